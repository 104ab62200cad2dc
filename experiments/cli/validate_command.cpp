#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/config/loader.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/trial_commands.hpp"

namespace expt::experiments {

// Loads and validates; on error prints every `file:line:col: key.path: message` and returns nullopt.
std::optional<config::TrialConfig> load_config_or_report(const std::string& path, const std::vector<std::string>& sets,
                                                         int rank) {
  try {
    return config::load_trial_config(path, sets);
  } catch (const config::ConfigErrors& e) {
    if (rank == 0) config::report_errors(e);
    return std::nullopt;
  }
}

int validate_command(const std::string& path, const std::vector<std::string>& sets, bool print, bool minimal) {
  const auto cfg = load_config_or_report(path, sets, 0);
  if (!cfg) return kExitUsage;
  if (print) {
    std::fputs(config::to_canonical_yaml(*cfg).c_str(), stdout);
  } else if (minimal) {
    std::fputs(config::minimal_yaml(*cfg).c_str(), stdout);
  } else {
    std::fprintf(stderr, "%s: valid (trial id %s)\n", path.c_str(), config::config_hash(*cfg).c_str());
  }
  return kExitOk;
}

}  // namespace expt::experiments
