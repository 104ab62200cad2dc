// `expt replay --optimizer CONFIG --trace TRACE.h5 --out OUT.h5`: applies the optimizer section of
// a trial config to a gradient trace (docs/trace-format.md) and writes the parameter trajectory.
#pragma once

#include <CLI/CLI.hpp>

namespace expt::experiments {

struct ReplayArgs {
  std::string optimizer_config;
  std::vector<std::string> sets;
  std::string trace;
  std::string out;
};

// Adds the `replay` subcommand to app, filling args when it is parsed.
CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args);

// Runs it; returns an exit code of cli.hpp (0 done, 2 bad config, 1 bad trace or I/O error, with
// "expt: error: ..." on stderr).
int replay_command(const ReplayArgs& args);

}  // namespace expt::experiments
