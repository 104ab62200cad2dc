// The `expt` command line (CLI11). Subcommands:
//   expt run CONFIG [--set key.path=value]... [--out DIR] [--progress auto|tty|plain|quiet]
//   expt validate CONFIG [--set key.path=value]... [--print]
//   expt data preview CONFIG [--count N] | expt data dump CONFIG --split train|eval --count N --out F.h5
//   expt plan STUDY | expt sweep STUDY [--out DIR] (under mpirun or alone) | expt status DIR
//   expt bench CONFIG [--steps N] [--warmup N] [--format table|json] [--dump DIR]   (docs/performance.md)
// Exit codes: experiments/cli/exit_codes.hpp.
#pragma once

namespace expt::experiments {

int run_cli(int argc, char** argv);

}  // namespace expt::experiments
