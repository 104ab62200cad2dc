// Which trial a trial directory holds (docs/results-format.md "Layout of a trial directory";
// decision 79). trial.yaml starts with the comment line `# trial <id>, config schema <n>` and then
// holds the full resolved config. Directories written before ids left out default keys (legacy
// directories) have no such line; their id was the hash of the full canonical YAML, which their
// checkpoints and result.h5 still carry, so they are recognised from trial.yaml's text and keep
// resuming.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/trial_config.hpp"

namespace expt::io {

// The config schema whose defaults legacy directories were written with: they are recognised only
// while kConfigSchemaVersion equals it (after a change of a default's meaning they are other trials).
inline constexpr std::int64_t kLegacyConfigSchema = 1;

// trial.yaml of a new directory: the header line, then config::to_canonical_yaml(cfg).
std::string trial_yaml_text(const config::TrialConfig& cfg);

// The id a legacy trial.yaml stood for: FNV-1a of its text without the `out:` line.
std::string legacy_trial_id(std::string_view trial_yaml);

struct DirectoryTrial {
  // The id of the trial the directory holds under the current config schema; empty when it was
  // written under another schema (no trial of this binary).
  std::string id;
  // A legacy directory's old id (what its checkpoints and result.h5 carry); empty otherwise.
  std::string legacy_id;
};

// What <trial_dir>/trial.yaml says; nullopt without one. Throws when it cannot be read or parsed.
std::optional<DirectoryTrial> read_directory_trial(const std::filesystem::path& trial_dir);

// Renames every legacy trials/<old id>/ to trials/<id>/ (when that name is free), so that a sweep
// started by an older binary resumes under the current ids. Run by the sweep's coordinator before
// it reads the trial directories, under the sweep lock. Returns one line per directory renamed or
// left alone.
std::vector<std::string> adopt_legacy_trial_directories(const std::filesystem::path& trials_dir);

}  // namespace expt::io
