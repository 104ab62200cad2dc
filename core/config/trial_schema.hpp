// The schema of a trial config: one table per struct of trial_config.hpp, and the checks that
// involve several keys. Used by loader.cpp; other config files (studies) build their own tables
// the same way.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/config/schema.hpp"
#include "core/config/trial_config.hpp"

namespace expt::config {

const schema::Table<TrialConfig>& trial_table();

// Conflicts between keys (warmup longer than training, batch not divisible by ranks, ...), each
// reported at the first of its keys that the config gives. A check whose keys already failed is
// skipped: their values are defaults, not what the user wrote.
void check_conflicts(const TrialConfig& cfg, const std::string& file, schema::Reader& r);

// A mixer or optimizer type (type_descriptors.hpp) with the keys of its section that apply to it
// and their defaults under it (canonical YAML text), in table order: what `expt types` prints.
struct TypeKeys {
  std::string name;
  std::vector<std::pair<std::string, std::string>> keys;
};
std::vector<TypeKeys> mixer_type_keys();
std::vector<TypeKeys> optimizer_type_keys();

}  // namespace expt::config
