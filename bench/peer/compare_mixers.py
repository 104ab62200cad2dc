#!/usr/bin/python3
"""expt's mixer layers against their PyTorch peer: forward+backward tokens/s, both sides alternately.

    /usr/bin/python3 bench/peer/compare_mixers.py [--build build/release] \
        [--mixers gla deltaproduct] \
        [--shapes 8x256x128 8x1024x256] [--repeats 3] [--iters 5] [--json out.json]

The default mixers are every mixer type of `expt types` that the peer implements (peer_types.py),
except none. A shape is BATCHxLENGTHxD_MODEL (4 heads, every other key at the mixer type's defaults; the base
config is bench/configs/gla.yaml with model.mixer.type set). For every (mixer, shape) it runs
bench/mixer_layers.cpp (build/release/bench/bench_mixer_layers) and bench/peer/mixer_peer_bench.py
in turn, `repeats` times (expt, peer, expt, peer, ...), each a fresh process with
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 (and torch.set_num_threads(1) on the
peer side), and prints the medians: tokens/s of each side and their ratio (by wall time and by
process CPU time, the steadier one on a shared machine), expt's achieved GFLOP/s (by wall and by
CPU time) and its share of the single-thread OpenBLAS sgemm GFLOP/s measured in the same expt
process (best of 5 products at n = 512 and 1024). FLOPs per token =
6 x (matrix parameters of the layer) + Mixer::core_flops_per_token(L) (bench/mixer_layers.cpp).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import peer_types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PINNED = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=PINNED).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build/release"))
    ap.add_argument("--mixers", nargs="+", help="default: every mixer type both sides have, except none")
    ap.add_argument("--shapes", nargs="+", default=["8x256x128", "8x1024x256"])
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], dest="sets", help="extra override for both sides")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args()
    expt = os.path.join(args.build, "expt")
    bench = os.path.join(args.build, "bench", "bench_mixer_layers")
    config = os.path.join(ROOT, "bench/configs/gla.yaml")
    if args.mixers is None:
        args.mixers = [m for m in peer_types.comparable(expt)[0] if m != "none"]
    peer_types.check_choices(expt, mixers=args.mixers)

    record = []
    header = ("mixer", "shape (B x L x d)", "expt tok/s", "peer tok/s", "ratio", "ratio (CPU time)", "expt GFLOP/s",
              "% of sgemm", "GFLOP/s, % (CPU time)", "FLOP/token")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape in args.shapes:
        B, L, d = (int(s) for s in shape.split("x"))
        for mixer in args.mixers:
            sets = [f"model.mixer.type={mixer}", f"model.mixer.heads={args.heads}", f"model.d_model={d}",
                    f"task.seq_len={L}", f"train.batch_size={B}"] + args.sets
            set_args = [a for s in sets for a in ("--set", s)]
            loop = ["--iters", str(args.iters), "--warmup", str(args.warmup)]
            expt_runs, peer_runs = [], []
            for _ in range(args.repeats):
                expt_runs.append(run_json([bench, config, *set_args, *loop]))
                peer_runs.append(run_json([sys.executable, os.path.join(HERE, "mixer_peer_bench.py"), config,
                                           "--expt", expt, *set_args, *loop]))
            if expt_runs[0]["n_params"] != peer_runs[0]["n_params"]:
                raise SystemExit(f"{mixer} {shape}: parameter counts differ: expt {expt_runs[0]['n_params']}, "
                                 f"peer {peer_runs[0]['n_params']}")
            med = statistics.median
            e, p = med(r["tokens_per_s"] for r in expt_runs), med(r["tokens_per_s"] for r in peer_runs)
            e_cpu, p_cpu = med(r["tokens_per_cpu_s"] for r in expt_runs), med(r["tokens_per_cpu_s"] for r in peer_runs)
            gflops = med(r["gflops"] for r in expt_runs)
            gflops_cpu = med(r["gflops_cpu"] for r in expt_runs)
            sgemm = med(r["sgemm_peak_gflops"] for r in expt_runs)
            flops = expt_runs[0]["flops_per_token"]
            row = (mixer, shape, f"{e:.0f}", f"{p:.0f}", f"{e / p:.2f}", f"{e_cpu / p_cpu:.2f}", f"{gflops:.2f}",
                   f"{100 * gflops / sgemm:.1f} %", f"{gflops_cpu:.1f}, {100 * gflops_cpu / sgemm:.1f} %",
                   f"{flops / 1e3:.0f} k")
            print("| " + " | ".join(row) + " |", flush=True)
            record.append({"mixer": mixer, "shape": shape, "expt_tokens_per_s": e, "peer_tokens_per_s": p,
                           "ratio": e / p, "ratio_cpu": e_cpu / p_cpu, "expt_gflops": gflops,
                           "expt_gflops_cpu": gflops_cpu,
                           "sgemm_peak_gflops": sgemm, "flops_per_token": flops, "expt_runs": expt_runs,
                           "peer_runs": peer_runs})
    print(f"sgemm peak (median over expt runs): {statistics.median(r['sgemm_peak_gflops'] for r in record):.2f} "
          f"GFLOP/s; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sets": args.sets, "repeats": args.repeats, "iters": args.iters, "cases": record}, f, indent=1)


if __name__ == "__main__":
    main()
