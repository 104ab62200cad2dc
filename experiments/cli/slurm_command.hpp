// `expt slurm submit STUDY --out DIR --workers N [--ranks-per-trial R] [--time HH:MM:SS]
// [--partition P] [--requeue] [--no-memory-check] [--dry-run] [--set key.path=value]...` (docs/cli.md,
// docs/distributed.md "Slurm"): validates the study, writes the sbatch script of experiments/cli/slurm_script.hpp to
// DIR/slurm/job-K.sbatch (K = 1, 2, ...: each submission adds workers), prints it and submits it
// with `sbatch` unless --dry-run. Exit codes: 0 written (and submitted), 1 sbatch failed, 2 bad study
// or usage (nothing written).
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace expt::experiments {

struct SlurmSubmitArgs {
  std::string study;
  std::vector<std::string> sets;
  std::string out;
  int workers = 0;
  int ranks_per_trial = 0;  // 0: the study's sweep.ranks_per_trial
  std::string time;         // empty: the partition's limit
  std::string partition;
  bool requeue = false;
  bool no_memory_check = false;
  bool dry_run = false;
};

// Adds `slurm` with its `submit` subcommand to `app`; returns the `slurm` subcommand.
CLI::App* add_slurm_command(CLI::App& app, SlurmSubmitArgs& args);

int slurm_submit_command(const SlurmSubmitArgs& args, std::ostream& out);

}  // namespace expt::experiments
