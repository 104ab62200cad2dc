// Loading a trial config: YAML (plus `--set key.path=value` overrides) -> validated TrialConfig,
// and back to canonical YAML; the hash of its keys that differ from their defaults is the trial's
// identity. docs/config.md describes the keys; its table is schema_markdown()'s output (a test keeps
// the two equal).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/config/config_error.hpp"
#include "core/config/trial_config.hpp"

namespace expt::config {

namespace schema {
template <class S>
struct Table;
}

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

// Version of the meaning of the config's defaults. It is part of every trial id, so it changes
// only when a default's meaning changes (a key whose default now means something else): then no
// earlier trial is taken for a new one. Adding a key, or writing a default out, changes no id.
inline constexpr std::int64_t kConfigSchemaVersion = 1;

// The keys of cfg that differ from their defaults, in the canonical form of to_canonical_yaml and
// without `out`: each type selector (task.type, model.mixer.type, ...) that is not the plain
// default, and every other key whose value is not its type's default (decision 16: reading a
// type resets its section to that type's defaults). parse_trial_config of it reproduces cfg.
std::string minimal_yaml(const TrialConfig& cfg);

// The trial's identity: 64-bit FNV-1a of "config_schema: <kConfigSchemaVersion>\n" followed by
// minimal_yaml(cfg), as 16 lowercase hex digits (docs/config.md "Canonical form and trial identity").
std::string config_hash(const TrialConfig& cfg);

// The same two against another key table (tests: a copy of trial_table() with a key added).
std::string minimal_yaml(const TrialConfig& cfg, const schema::Table<TrialConfig>& table);
std::string config_hash(const TrialConfig& cfg, const schema::Table<TrialConfig>& table);

// The key table of docs/config.md (markdown): key, type, default, domain, applies to, meaning.
std::string schema_markdown();

// (dotted key path, canonical YAML text of the value) for every key that applies, in schema
// order, without `out`. For result files and tables.
std::vector<std::pair<std::string, std::string>> flatten_config(const TrialConfig& cfg);

// The same keys as typed values, for HDF5 attributes (/hparams): integers as int64, floats as
// double (bit-exact), booleans as int64 0/1, strings unquoted, lists as their canonical flow text.
using TypedValue = std::variant<double, std::int64_t, std::string>;
std::vector<std::pair<std::string, TypedValue>> typed_config(const TrialConfig& cfg);

}  // namespace expt::config
