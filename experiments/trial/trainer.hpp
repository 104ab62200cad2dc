// The trainer for one trial: builds the task, model and optimizer from a resolved TrialConfig,
// trains on the ranks of a Communicator (data parallel, each rank a fixed slice of the global
// batch), evaluates on a fixed step grid, checkpoints with a COMMIT marker, and writes the trial's
// results tree (docs/results-format.md). Running it again on the same directory resumes from
// the last committed checkpoint and gives bit-identical metrics; a finished trial is not rerun.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/comm/communicator.hpp"
#include "core/comm/gradient_buckets.hpp"
#include "core/config/trial_config.hpp"
#include "core/io/results.hpp"

namespace expt::experiments {

// Test-only fault injection, read from EXPT_TEST_* environment variables (docs/reliability.md).
// Never set in production runs; every switch is off by default.
struct TrainerHooks {
  std::int64_t nan_at_step = -1;      // EXPT_TEST_NAN_AT_STEP: the loss of that step becomes NaN
  int step_delay_ms = 0;              // EXPT_TEST_STEP_DELAY_MS: sleep after each step (kill tests)
  bool drop_optimizer_state = false;  // EXPT_TEST_DROP_RESUME_STATE=optimizer: resume without it
  std::int64_t throw_at_step = -1;    // EXPT_TEST_THROW_AT_STEP: throw inside the step
  // EXPT_TEST_NO_LEASES=1: the trial directory is not locked either (the lease torture's negative
  // control, where workers without leases must be seen to train one trial twice at once)
  bool no_directory_lock = false;
  static TrainerHooks from_environment();
};

enum class ProgressMode { automatic, tty, plain, quiet };

// What the group leader reports after each optimizer step (sweep progress messages).
struct StepProgress {
  std::int64_t step = 0;
  std::int64_t steps = 0;   // train.steps
  double loss = 0;          // training loss of this step (after the reduction)
  double tokens_per_s = 0;  // global batch tokens / this step's wall time
  double wall_s = 0;        // training wall time of the trial so far
};

struct TrainerOptions {
  ProgressMode progress = ProgressMode::automatic;
  TrainerHooks hooks;
  // Data-parallel gradient reduction (docs/distributed.md); unset: EXPT_GRAD_REDUCTION
  // (overlapped | blocking), default overlapped. Ignored on one rank and in deterministic mode.
  std::optional<comm::ReductionMode> reduction;
  // Called on the group's rank 0 after every optimizer step; must be cheap (the sweep rate-limits
  // its messages itself).
  std::function<void(const StepProgress&)> on_step;
  // `expt worker` (experiments/sweep/worker.cpp): asked on the group's rank 0 at every step
  // boundary and before anything is committed (checkpoint, result.h5, attempts.jsonl end line).
  // false: another worker owns the trial now (its lease was lost), so the trial stops at once and
  // writes nothing more. Unset: always the owner.
  std::function<bool()> still_owner;
  // WSD branches (experiments/trial/branching.hpp), set by a sweep on the group's rank 0 (every
  // rank learns fork_points from it). fork_points: sorted steps < train.steps at which the trial
  // keeps a fork point for its branches. trunk_dir: this trial is a branch; when its directory has
  // no committed checkpoint it starts from the trunk's fork point at branch_step, or, when there is
  // none, from scratch (the same result, at the full cost).
  std::vector<std::int64_t> fork_points;
  std::filesystem::path trunk_dir;
  std::int64_t branch_step = 0;
  // search.halving (docs/sweeps.md "Successive halving"): > 0: train up to this step, commit a
  // checkpoint there and stop with status PAUSED (a trunk waiting for a rung decision); a later run
  // resumes from that checkpoint exactly as after a signal, so the metrics do not change.
  std::int64_t stop_at = 0;
  // Refuse a trial whose memory estimate does not fit (experiments/trial/memory_estimate.hpp);
  // false: `expt run --no-memory-check`.
  bool memory_check = true;
};

struct TrialOutcome {
  io::TrialSummary summary;
  bool already_finished = false;  // the directory held a finished trial; nothing was run
  bool interrupted = false;       // stopped by SIGINT/SIGTERM/SIGHUP after checkpointing
  int signal = 0;                 // the signal that interrupted it
  bool ownership_lost = false;    // stopped because still_owner() said false; nothing committed
  bool paused = false;            // stopped at TrainerOptions::stop_at (summary.status PAUSED)
  // Set by experiments/sweep's run_sweep_trial, not by run_trial: the trial was refused before it
  // started (the memory pre-flight), a FAILED that another attempt on this host would meet again.
  bool refused = false;
  std::filesystem::path result;  // result.h5 (empty when interrupted)
};

// Trains (or resumes, or recognises as finished) the trial of `cfg` in directory cfg.out.
// Throws std::runtime_error when the directory holds a different trial or is locked by another run,
// MemoryRefusal (memory_estimate.hpp) before anything is allocated or written when it would not fit.
TrialOutcome run_trial(const config::TrialConfig& cfg, comm::Communicator& comm, const TrainerOptions& options);

}  // namespace expt::experiments
