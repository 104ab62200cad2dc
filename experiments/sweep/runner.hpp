// Running a planned study: trials handed out by the Scheduler (experiments/sweep/scheduler.hpp),
// either one by one in this process (runner.cpp) or, under mpirun/srun, from world rank 0 (the
// coordinator) to groups of sweep.ranks_per_trial ranks that train one data-parallel trial at a
// time (coordinator.cpp; docs/sweeps.md). Each returns the sweep's exit code
// (experiments/cli/exit_codes.hpp): 0 done, 1 some trial FAILED for good, 128+N stopped by signal N
// (rerun the same command to resume).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/comm/communicator.hpp"
#include "core/comm/sweep_channel.hpp"
#include "core/io/results.hpp"
#include "core/io/trial_directory.hpp"
#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"
#include "experiments/trial/trainer.hpp"

namespace expt::experiments {

class Scheduler;

// Both first claim the sweep directory `out` for the study (experiments/sweep/study_identity.hpp):
// a different study is refused (StudyMismatch) unless `add_to_existing`.

// One process: every trial in turn on this rank (sweep.ranks_per_trial must be 1).
// `command` (the command line, to resume) goes into the sweep's heartbeat (core/io/heartbeat.hpp).
int run_sweep_alone(const Study& study, const Planner& planner, const std::filesystem::path& out, bool add_to_existing,
                    const std::string& command);

// World rank 0 of an MPI job of world_size ranks: hands trials to the groups until every trial is
// done or a signal stops the sweep, then tells every group to stop. A refused study ends the job
// with exit code 2.
int coordinate_sweep(const Study& study, const Planner& planner, const std::filesystem::path& out, bool add_to_existing,
                     int world_size, const std::string& command);

// World rank >= 1: joins group (world_rank - 1) / group_size and trains the trials the coordinator
// sends its leader, until told to stop.
int work_in_sweep_group(int world_rank, int group_size, double collective_timeout_s);

// `expt worker` (worker.cpp, docs/distributed.md "Workers and leases"): claims the next runnable
// trial with a lease, trains it, repeats; 0 when nothing runnable is left (1 when some trial
// FAILED for good), 128+N after a stop signal (checkpoint written, lease released). `channel`:
// under mpirun/srun the job's ranks are one worker (this is world rank 0); null: one process.
int run_worker(const Study& study, const Planner& planner, const std::filesystem::path& out, bool add_to_existing,
               const std::string& command, comm::WorkerChannel* channel);
// World rank >= 1 of a multi-rank worker: trains what rank 0 shares until it says stop.
int follow_worker(comm::WorkerChannel& channel, double collective_timeout_s);

// ---- Shared by all ways of running ----

// The watchdog's action (core/comm/watchdog.hpp) for the ranks of a `group` ("group" of an
// `expt sweep`, "worker"): print what was stuck and `then` (what the user does next), end the job
// with exit code 124.
std::function<void(const std::string&)> abort_job_when_stuck(const std::string& group, const std::string& then);

// The command line as typed (for "resume with"): the arguments joined by spaces.
std::string command_line(int argc, char** argv);

// An exclusive lock on <dir>/.sweep.lock (creating dir): two sweeps on one directory would hand
// out trials twice.
io::DirectoryLock lock_sweep_directory(const std::filesystem::path& dir);
// An `expt sweep` takes no leases, so it must not run next to live `expt worker`s (their heartbeats
// in `dir`): throws std::runtime_error naming one of them and what to do.
void refuse_if_workers_alive(const std::filesystem::path& dir);
// <dir>/trials/, sweep.yaml (the study as submitted) and sweep.resolved.yaml.
void prepare_sweep_directory(const Study& study, const Planner& planner, const std::filesystem::path& dir);
// A trial's part in WSD branching (TrainerOptions::fork_points, trunk_dir, branch_step), as the
// scheduler hands it out: the fork points it keeps, and, for a branch, its trunk's directory.
struct BranchRole {
  std::vector<std::int64_t> fork_points;
  std::filesystem::path trunk_dir;  // empty: not a branch
  std::int64_t branch_step = 0;
  std::int64_t stop_at = 0;     // search.halving: the step a trunk stops at (PlannedTrial::stop_at)
  std::string to_json() const;  // one line
  static BranchRole from_json(const std::string& line);
};
BranchRole branch_role(const Scheduler& sched, const PlannedTrial& t);
// ", branch of <trunk id> from step <c>" for a branch handed out with its trunk, else "".
std::string branch_note(const PlannedTrial& t);

// Runs one trial of the sweep in `dir` on `comm`; what run_trial throws (a directory held by
// another trial or locked by another process) ends only this trial, as FAILED; a refusal of the
// memory pre-flight too, with TrialOutcome::refused set (not retried: Scheduler::finished).
// `still_owner`: TrainerOptions::still_owner (workers; empty for `expt sweep`). `branch`: the
// group's rank 0 only (the trainer shares the fork points with the other ranks).
TrialOutcome run_sweep_trial(config::TrialConfig cfg, const std::filesystem::path& dir, comm::Communicator& comm,
                             std::function<void(const StepProgress&)> on_step, std::function<bool()> still_owner = {},
                             const BranchRole& branch = {});
// Calls `report` with a trial's step at most every 2 s (and at its first step, so a short trial
// shows up too) and the seconds per step measured since that first step (0 before a second
// report: the first step includes start-up); status.json is rewritten as often.
std::function<void(const StepProgress&)> rate_limited(std::function<void(const StepProgress&, double step_s)> report);
// "[id] COMPLETED (cell seed s point): final eval loss x", or why it failed, or which signal
// stopped it (`signal`, when the trial was interrupted) at which step.
std::string describe_outcome(const PlannedTrial& t, const io::TrialSummary& s, int signal);
// Prints to stderr which signal stopped the sweep and how to resume (nothing when signal is 0).
void report_sweep_stop(int signal);
// 128+signal when stopped, 1 when a trial failed for good, else 0.
int sweep_exit_code(const Scheduler& sched, int signal);
double seconds_since(std::chrono::steady_clock::time_point t0);

}  // namespace expt::experiments
