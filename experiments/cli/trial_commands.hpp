// The trial subcommands of `expt` (wired into experiments/cli/cli.cpp):
//   expt run CONFIG [--set key.path=value]... [--out DIR] [--progress auto|tty|plain|quiet]
//            [--no-memory-check]         train one trial, or resume it (run_command.cpp)
//   expt validate CONFIG [--set ...] [--print | --minimal]   check it, or print it (validate_command.cpp)
//   expt types                           the mixer and optimizer types, their keys and defaults
//                                        (types_command.cpp)
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"

namespace expt::experiments {

// Loads and validates a trial config with its `--set` overrides; on error rank 0 prints every
// `file:line:col: key.path: message` and nullopt is returned.
std::optional<config::TrialConfig> load_config_or_report(const std::string& path, const std::vector<std::string>& sets,
                                                         int rank);

// --print: the resolved config; --minimal: the keys that differ from their defaults; else the id.
int validate_command(const std::string& path, const std::vector<std::string>& sets, bool print, bool minimal);

// The mixer and optimizer types (core/config/type_descriptors.hpp) with the keys that apply to each
// and their defaults under it, as JSON: {"mixers": {name: {key: canonical YAML text}}, "optimizers":
// ...}. Scripts (bench/peer/peer_types.py) take the list of types from here.
int types_command(std::ostream& out);

// argc/argv go to MPI_Init when launched by mpirun (a data-parallel trial over the ranks).
// memory_check false: start even when the memory estimate exceeds what is available.
int run_command(int argc, char** argv, const std::string& path, std::vector<std::string> sets, const std::string& out,
                const std::string& progress, bool memory_check);

}  // namespace expt::experiments
