// Loading a trial config: YAML (plus `--set key.path=value` overrides) -> validated TrialConfig,
// and back to canonical YAML, whose hash is the trial's identity. docs/config.md describes the
// keys; its table is schema_markdown()'s output (a test keeps the two equal).
#pragma once

#include <string>
#include <cstdint>
#include <utility>
#include <variant>
#include <vector>

#include "core/config/config_error.hpp"
#include "core/config/trial_config.hpp"

namespace expt::config {

// Reads and validates a config file. Throws ConfigErrors listing every problem (file:line:col:
// key.path: message, sorted by position; a file that cannot be read is reported at line 0).
TrialConfig load_trial_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from text; `filename` is used in messages. An empty text is a valid config (defaults).
// Each override is `key.path=value`, the value a YAML scalar or flow value; overrides apply in
// order after the file (mappings merge key by key) and their errors point at `--set:1:<col>`.
TrialConfig parse_trial_config(const std::string& yaml_text, const std::string& filename,
                               const std::vector<std::string>& overrides = {});

// Every key that applies (defaults filled), in schema order, canonical scalars (floats like
// 1.0e-03, shortest round-trip mantissa), 2-space block mappings, flow lists. Includes `out`.
// parse_trial_config(to_canonical_yaml(cfg), ...) reproduces cfg exactly.
std::string to_canonical_yaml(const TrialConfig& cfg);

// The trial's identity: 64-bit FNV-1a of the canonical YAML without `out`, as 16 lowercase hex.
std::string config_hash(const TrialConfig& cfg);

// The key table of docs/config.md (markdown): key, type, default, domain, applies to, meaning.
std::string schema_markdown();

// (dotted key path, canonical YAML text of the value) for every key that applies, in schema
// order, without `out`: exactly what the hash covers. For result files and tables.
std::vector<std::pair<std::string, std::string>> flatten_config(const TrialConfig& cfg);

// The same keys as typed values, for HDF5 attributes (/hparams): integers as int64, floats as
// double (bit-exact), booleans as int64 0/1, strings unquoted, lists as their canonical flow text.
using TypedValue = std::variant<double, std::int64_t, std::string>;
std::vector<std::pair<std::string, TypedValue>> typed_config(const TrialConfig& cfg);

}  // namespace expt::config
