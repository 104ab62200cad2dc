#!/usr/bin/env python3
"""Two or more `expt` binaries (or one binary under different environments) on the same config,
run by run in turn: the before/after measurement of a change to the training step.

    /usr/bin/python3 bench/compare_binaries.py bench/configs/deltaproduct.yaml \
        --set model.d_model=256 --rounds 8 \
        --variant old=/path/to/old/expt --variant new=build/release/expt [--json out.json]

    A variant is NAME=BINARY, optionally followed by :KEY=VALUE environment settings, e.g.
    aligned=build/release/expt:LD_PRELOAD=/tmp/shim.so.

Each round runs `expt bench CONFIG --set ... --steps S --warmup W --format json` once per variant,
in the order given, each as a fresh process with OMP_NUM_THREADS=1. On a machine whose speed moves
from one minute to the next (docs/performance.md, the Zen 5 VM: up to 25 %), only runs made next to
each other compare, so the figure to read is the paired one: the median over rounds of
step(first variant) / step(last variant). Printed per variant: the median and fastest step, the
median time outside BLAS, the median BLAS rate and MFU, and the sgemm probe of each run; then the
paired ratio and whether every variant's losses equal the first's element for element (a change
meant to keep the bits must print True).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def parse_variant(spec):
    if "=" not in spec:
        raise argparse.ArgumentTypeError(f"variant '{spec}' is not NAME=BINARY[:KEY=VALUE...]")
    name, rest = spec.split("=", 1)
    binary, *settings = rest.split(":")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for setting in settings:
        if "=" not in setting:
            raise argparse.ArgumentTypeError(f"environment setting '{setting}' of variant '{name}' is not KEY=VALUE")
        key, value = setting.split("=", 1)
        env[key] = value
    return name, binary, env


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--variant", type=parse_variant, action="append", required=True)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="key.path=value for expt bench")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", help="write every run's `expt bench` report here")
    args = parser.parse_args()
    if len(args.variant) < 2:
        parser.error("give at least two --variant")
    names = [name for name, _, _ in args.variant]
    if len(set(names)) != len(names):
        parser.error("variant names must differ")
    if args.rounds < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--rounds and --steps must be positive, --warmup not negative")

    runs = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, binary, env in args.variant:
            command = [binary, "bench", args.config, "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--format", "json"]
            for s in args.sets:
                command += ["--set", s]
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                sys.exit(f"variant {name}: {' '.join(command)} failed:\n{done.stderr}")
            runs[name].append(json.loads(done.stdout))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"config": args.config, "sets": args.sets, "steps": args.steps, "warmup": args.warmup,
                       "runs": runs}, out)

    median = statistics.median
    for name in names:
        r = runs[name]
        steps = [1000 * j["step_s"] for j in r]
        print(f"{name:12s} step median {median(steps):7.1f} ms  fastest {min(steps):7.1f}  "
              f"outside BLAS median {1000 * median(j['blas']['outside_s'] for j in r):6.1f} ms  "
              f"BLAS {median(j['blas']['gflops'] for j in r):5.1f} GFLOP/s  "
              f"MFU median {100 * median(j['mfu'] for j in r):4.1f} %  "
              f"probes {[round(j['sgemm_peak_gflops']) for j in r]}")
    first, last = names[0], names[-1]
    ratios = [a["step_s"] / b["step_s"] for a, b in zip(runs[first], runs[last])]
    print(f"paired step ratio {first} / {last}: median {median(ratios):.3f}  rounds {[round(x, 3) for x in ratios]}")
    same = all(a["losses"] == b["losses"] for name in names[1:] for a, b in zip(runs[first], runs[name]))
    print(f"losses identical: {same}")


if __name__ == "__main__":
    main()
