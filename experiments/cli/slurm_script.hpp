// The sbatch script of `expt slurm submit` (docs/distributed.md "Slurm"): a job array of N
// independent `expt worker` processes sharing one sweep directory. Generating it is a pure function
// of SlurmJob, so the script is unit-tested without a cluster (tests/experiments/slurm_script_test.cpp)
// and the submit command (experiments/cli/slurm_command.cpp) only validates, writes and submits it.
//
// Shape of the script, array task i of N: the batch shell starts the worker in the background and
// waits for it, and exits with its code.
//   ranks_per_trial 1:  EXPT worker STUDY --out DIR &
//   ranks_per_trial R:  srun --mpi=pmix --ntasks=R EXPT worker STUDY --out DIR &   (one R-rank worker)
// `--signal=B:USR1@S`: S seconds before the time limit the shell gets SIGUSR1 and sends the worker
// SIGTERM (a multi-rank worker through `scancel --signal=TERM JOB.0`: srun kills its step when it is
// itself sent SIGTERM); the worker checkpoints at its next step boundary, releases its lease and exits
// 143. With --requeue the task then requeues itself (`scontrol requeue`), as Slurm does on node
// failure or preemption; a requeued task, or the script submitted again, runs the worker again, which
// takes the next runnable trial (often the one it left, resumed from its checkpoint). SIGTERM from
// scancel or preemption reaches the worker's processes directly; the shell ignores it and waits, so
// that Slurm does not end the job while the worker checkpoints.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace expt::experiments {

struct SlurmJob {
  std::string expt;                 // absolute path of the expt binary the workers run
  std::string study_file;           // absolute path of the study file
  std::vector<std::string> sets;    // study overrides, passed to every worker as --set
  std::string out;                  // absolute path of the sweep directory (shared by all workers)
  std::string name;                 // the study's name (job name expt-<name>)
  int workers = 1;                  // array tasks 0..workers-1
  int ranks_per_trial = 1;          // ranks of one worker (the study's sweep.ranks_per_trial)
  std::optional<int> time_limit_s;  // --time, in seconds
  std::string partition;            // empty: the cluster's default partition
  bool requeue = false;             // #SBATCH --requeue (else the cluster's default)
  bool no_memory_check = false;     // the workers start trials the memory pre-flight would refuse
};

// Parses Slurm's HH:MM:SS (also MM:SS and D-HH:MM:SS, as sbatch accepts) into seconds; nullopt when
// malformed or zero.
std::optional<int> parse_slurm_time(const std::string& text);

// Seconds before the time limit at which the worker gets SIGTERM: a tenth of the limit, between 30
// and 300 s (300 s when no limit is given: the partition's own limit is usually hours). One step and
// one checkpoint must fit in it; Slurm may send the signal up to a minute early, never late.
int slurm_signal_margin_s(const std::optional<int>& time_limit_s);

// The sbatch script for `job`; `log_pattern` is the #SBATCH --output path (with %A / %a).
std::string slurm_script(const SlurmJob& job, const std::string& log_pattern);

// `text` quoted for a POSIX shell when it holds anything but [A-Za-z0-9_./:=@%+-].
std::string shell_quote(const std::string& text);

}  // namespace expt::experiments
