// The schema of a trial config: one table per struct of trial_config.hpp, and the checks that
// involve several keys. Used by loader.cpp; other config files (studies) build their own tables
// the same way.
#pragma once

#include <string>

#include "core/config/schema.hpp"
#include "core/config/trial_config.hpp"

namespace expt::config {

const schema::Table<TrialConfig>& trial_table();

// Conflicts between keys (warmup longer than training, batch not divisible by ranks, ...), each
// reported at the first of its keys that the config gives. A check whose keys already failed is
// skipped: their values are defaults, not what the user wrote.
void check_conflicts(const TrialConfig& cfg, const std::string& file, schema::Reader& r);

}  // namespace expt::config
