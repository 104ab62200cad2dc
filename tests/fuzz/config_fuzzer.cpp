// libFuzzer target over the YAML loading and validation path (scripts/fuzz.sh builds and runs it).
//
// Input: a YAML text, optionally followed by a line "#--set" and one `--set` override per line.
// Every input goes through both parsers, as a trial config and as a study file. Allowed outcomes:
// success, or config::ConfigErrors (the one way bad input is reported: file:line:col errors).
// Anything else is a bug that libFuzzer reports: a crash, a sanitizer report, another exception
// escaping, or a broken round trip: a valid trial config must print (to_canonical_yaml) as YAML
// that parses back to the same trial hash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/config/config_error.hpp"
#include "core/config/loader.hpp"
#include "experiments/study/study.hpp"

namespace {

void split_input(const std::string& input, std::string& yaml, std::vector<std::string>& overrides) {
  const std::string marker = "#--set\n";
  const std::size_t at = input.find(marker);
  yaml = input.substr(0, at);
  if (at == std::string::npos) return;
  std::size_t pos = at + marker.size();
  while (pos < input.size()) {
    std::size_t end = input.find('\n', pos);
    if (end == std::string::npos) end = input.size();
    overrides.push_back(input.substr(pos, end - pos));
    pos = end + 1;
  }
}

void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "config_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void check_errors(const expt::config::ConfigErrors& e) {
  if (e.errors().empty()) fail("ConfigErrors without any error", "");
  for (const auto& err : e.errors())
    if (err.str().empty()) fail("an error that prints as nothing", "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string yaml;
  std::vector<std::string> overrides;
  split_input(input, yaml, overrides);

  try {
    const auto cfg = expt::config::parse_trial_config(yaml, "fuzz.yaml", overrides);
    const std::string canonical = expt::config::to_canonical_yaml(cfg);
    try {
      const auto again = expt::config::parse_trial_config(canonical, "canonical.yaml");
      if (expt::config::config_hash(again) != expt::config::config_hash(cfg))
        fail("canonical YAML parses to another trial", canonical);
    } catch (const expt::config::ConfigErrors& e) {
      fail("canonical YAML of a valid config does not validate", canonical + "\n" + e.errors().front().str());
    }
  } catch (const expt::config::ConfigErrors& e) {
    check_errors(e);
  }

  try {
    expt::experiments::parse_study(yaml, "fuzz.study.yaml", overrides);
  } catch (const expt::config::ConfigErrors& e) {
    check_errors(e);
  }
  return 0;
}
