// Exit codes of every `expt` command (docs/cli.md), in one place:
//   0        done (COMPLETED, or already finished; a sweep with every trial done)
//   1        a trial FAILED (for a sweep: some trial FAILED for good), or a runtime error
//   2        bad configuration, study or usage, or a sweep directory that holds another study
//            (nothing was run)
//   4        the trial DIVERGED (`expt run`)
//   124      a collective blocked past sweep.collective_timeout_s (the watchdog ended the job, as
//            timeout(1) does); rerun the same command to resume
//   128+N    stopped by signal N after writing a checkpoint (129 SIGHUP, 130 SIGINT, 143 SIGTERM); rerun the
//            same command to resume
#pragma once

namespace expt::experiments {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitDiverged = 4;
inline constexpr int kExitWatchdog = 124;

// The exit code of a run stopped by `signal` after checkpointing.
constexpr int exit_code_for_signal(int signal) { return 128 + signal; }

}  // namespace expt::experiments
