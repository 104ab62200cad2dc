// The sweep subcommands of `expt` (wired into experiments/cli/cli.cpp):
//   expt plan STUDY [--set key.path=value]...    the trials a study would run (coordinate descent:
//                                                the first round of every cell), nothing is run
//   expt sweep STUDY [--set ...] [--out DIR]      run it: alone (trials one by one) or under
//                                                mpirun/srun (rank 0 coordinates, groups train)
//   expt worker STUDY [--set ...] [--out DIR]     claim trials by lease and train them until none is
//                                                runnable (any number, any host sharing DIR)
//   expt status DIR [--watch [SECONDS]]           the live table of a sweep: status.json, heartbeats,
//                                                leases
// Exit codes as in experiments/cli/exit_codes.hpp: 0 done, 1 some trial FAILED (or a runtime error), 2 bad
// study or usage, 128+N stopped by signal N (rerun the same command to resume).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace expt::experiments {

int plan_command(const std::string& study_path, const std::vector<std::string>& sets, std::ostream& out);

// `out` empty: runs/<study name>. argc/argv are passed to MPI_Init when launched by mpirun/srun.
// `add_to_existing`: a directory holding another study's sweep takes this study's trials too
// (experiments/sweep/study_identity.hpp); otherwise such a directory is refused with exit code 2.
int sweep_command(int argc, char** argv, const std::string& study_path, const std::vector<std::string>& sets,
                  const std::string& out, bool add_to_existing);

// docs/distributed.md "Workers and leases". Under mpirun/srun the job's ranks are one worker.
int worker_command(int argc, char** argv, const std::string& study_path, const std::vector<std::string>& sets,
                   const std::string& out, bool add_to_existing);

// `watch_s` > 0: redraw every watch_s seconds until the sweep is no longer running (or Ctrl-C).
int status_command(const std::string& dir, std::ostream& out, double watch_s = 0);

}  // namespace expt::experiments
