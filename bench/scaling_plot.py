#!/usr/bin/python3
"""Scaling plot of expt's training throughput (docs/performance.md): tokens/s of a full training
step (AdamW, 4 layers, batch 8, one thread) against d_model (at length 256) and against the
sequence length (at d_model 128), for each mixer, from `expt bench --format json`.

    /usr/bin/python3 bench/scaling_plot.py --expt build/release/expt --out docs/img/scaling.png \
        [--json docs/img/scaling.json] [--steps 3]

Solid lines: tokens per wall-clock second; dashed: tokens per CPU second of the process (the two
differ when other processes share the core). Runs are pinned to one BLAS/OpenMP thread.
"""

import argparse
import json
import os
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINNED = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
MIXERS = ("gla", "deltaproduct", "attention")


def bench(expt, mixer, d_model, seq_len, steps):
    cmd = [expt, "bench", os.path.join(ROOT, "bench/configs", f"{mixer}.yaml"), "--set", f"model.d_model={d_model}",
           "--set", f"task.seq_len={seq_len}", "--steps", str(steps), "--warmup", "1", "--format", "json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=PINNED).stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expt", default=os.path.join(ROOT, "build/release/expt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/img/scaling.png"))
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--d-models", nargs="+", type=int, default=[64, 128, 256, 512])
    ap.add_argument("--lengths", nargs="+", type=int, default=[128, 256, 512, 1024])
    args = ap.parse_args()

    runs = []
    for mixer in MIXERS:
        for d in args.d_models:
            runs.append({"sweep": "d_model", "mixer": mixer, "d_model": d, "seq_len": 256,
                         **bench(args.expt, mixer, d, 256, args.steps)})
        for L in args.lengths:
            runs.append({"sweep": "seq_len", "mixer": mixer, "d_model": 128, "seq_len": L,
                         **bench(args.expt, mixer, 128, L, args.steps)})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, sweep, xlabel in ((axes[0], "d_model", "d_model (length 256)"),
                              (axes[1], "seq_len", "sequence length (d_model 128)")):
        for i, mixer in enumerate(MIXERS):
            rs = [r for r in runs if r["sweep"] == sweep and r["mixer"] == mixer]
            xs = [r[sweep] for r in rs]
            color = f"C{i}"
            ax.plot(xs, [r["tokens_per_s"] for r in rs], "o-", color=color, label=f"{mixer} (wall)")
            ax.plot(xs, [r["tokens_per_cpu_s"] for r in rs], "x--", color=color, alpha=0.6,
                    label=f"{mixer} (CPU time)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training tokens/s (1 thread)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("expt training step (AdamW, 4 layers, batch 8): tokens/s")
    fig.tight_layout()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
