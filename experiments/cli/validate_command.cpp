#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/config/loader.hpp"
#include "core/util/allocation.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/trial_commands.hpp"
#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"
#include "experiments/sweep/scheduler.hpp"
#include "experiments/sweep/study_identity.hpp"
#include "experiments/trial/memory_estimate.hpp"

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

namespace {

// A study file is a YAML mapping with a top-level `study:` key (docs/sweeps.md); anything else,
// including YAML that does not parse, goes to the trial config path and its errors.
bool is_study_file(const std::string& path) {
  try {
    const YAML::Node doc = YAML::LoadFile(path);
    return doc.IsMap() && doc["study"];
  } catch (const YAML::Exception&) {
    return false;
  }
}

// Validates a study exactly as `expt plan` does (same errors); prints its resolved form with
// --print, else its identity and where to see its trials.
int validate_study(const std::string& path, const std::vector<std::string>& sets, bool print) {
  try {
    const Study study = load_study(path, sets);
    const Planner planner(study);
    if (print) {
      std::fputs(resolved_study_yaml(planner).c_str(), stdout);
    } else {
      std::fprintf(stderr, "%s: valid study '%s' (identity %s); `expt plan %s` lists its trials\n", path.c_str(),
                   study.name.c_str(), study_identity(planner).c_str(), path.c_str());
    }
    return kExitOk;
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    return kExitUsage;
  }
}

// The trial's memory estimate and whether it fits here (`expt run` refuses what does not).
std::string memory_note(const config::TrialConfig& cfg) {
  try {
    const MemoryEstimate estimate = estimate_trial_memory(cfg);
    std::string note = describe(estimate) + "\n";
    const auto available = available_memory();
    if (!available) return note + "  (the memory available here is unknown)\n";
    const int ranks_here = cfg.train.ranks;  // all of the trial's ranks on one host
    const double need = estimate.total() * ranks_here;
    if (need <= available->bytes)
      return note + fmt::format("  fits here: {} for {} rank(s) of {} available ({})\n", util::format_bytes(need),
                                ranks_here, util::format_bytes(available->bytes), available->source);
    return note + fmt::format(
                      "  does NOT fit here: {} for {} rank(s) of {} available ({}); `expt run` refuses it on this "
                      "host unless --no-memory-check\n",
                      util::format_bytes(need), ranks_here, util::format_bytes(available->bytes), available->source);
  } catch (const std::exception& e) {
    return fmt::format("memory estimate: not available ({})\n", e.what());
  }
}

}  // namespace

int validate_command(const std::string& path, const std::vector<std::string>& sets, bool print, bool minimal) {
  // A study has one resolved form; --minimal (a trial config's non-default keys) prints it too.
  if (is_study_file(path)) return validate_study(path, sets, print || minimal);
  const auto cfg = load_config_or_report(path, sets, 0);
  if (!cfg) return kExitUsage;
  if (print) {
    std::fputs(config::to_canonical_yaml(*cfg).c_str(), stdout);
  } else if (minimal) {
    std::fputs(config::minimal_yaml(*cfg).c_str(), stdout);
  } else {
    std::fprintf(stderr, "%s: valid (trial id %s)\n", path.c_str(), config::config_hash(*cfg).c_str());
    std::fputs(memory_note(*cfg).c_str(), stderr);
  }
  return kExitOk;
}

}  // namespace expt::experiments
