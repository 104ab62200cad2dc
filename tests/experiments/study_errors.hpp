// Test helpers for study-file errors: every error of parsing a study text, as the lines
// `file:line:col: path: message` that `expt plan` prints, and a search among them.
#pragma once

#include <string>
#include <vector>

#include "core/config/config_error.hpp"
#include "experiments/study/study.hpp"

namespace expt::test {

// Every error of parsing `text` as "study.yaml" (with `sets` as --set overrides); empty when it
// parses.
inline std::vector<std::string> study_errors(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    experiments::parse_study(text, "study.yaml", sets);
  } catch (const config::ConfigErrors& e) {
    std::vector<std::string> out;
    for (const auto& err : e.errors()) out.push_back(err.str());
    return out;
  }
  return {};
}

// Whether some error starts with `prefix` (e.g. "study.yaml:7:5: search.confirm") and contains
// `fragment`.
inline bool has_error(const std::vector<std::string>& errors, const std::string& prefix, const std::string& fragment) {
  for (const std::string& e : errors)
    if (e.rfind(prefix, 0) == 0 && e.find(fragment) != std::string::npos) return true;
  return false;
}

}  // namespace expt::test
