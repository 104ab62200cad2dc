// The `expt` command line (CLI11). Subcommands:
//   expt run CONFIG [--set key.path=value]... [--out DIR] [--progress auto|tty|plain|quiet]
//   expt validate CONFIG [--set key.path=value]... [--print]
//   expt data preview CONFIG [--count N] | expt data dump CONFIG --split train|eval --count N --out F.h5
//   expt plan STUDY | expt sweep STUDY [--out DIR] (under mpirun or alone) | expt status DIR
//   expt bench CONFIG [--steps N] [--warmup N] [--format table|json] [--dump DIR]   (docs/performance.md)
// Exit codes (docs/cli.md): 0 done (COMPLETED, or already finished), 1 the trial FAILED or a
// runtime error, 2 bad configuration or usage, 4 the trial DIVERGED, 128+N stopped by signal N
// after writing a checkpoint (130 SIGINT, 143 SIGTERM).
#pragma once

namespace expt::experiments {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitDiverged = 4;
inline constexpr int kExitWatchdog = 124;  // a collective blocked past sweep.collective_timeout_s (as timeout(1))

int run_cli(int argc, char** argv);

}  // namespace expt::experiments
