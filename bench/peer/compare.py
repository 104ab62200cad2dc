#!/usr/bin/python3
"""expt against its PyTorch peer: tokens/s of a full training step, both sides alternately.

    /usr/bin/python3 bench/peer/compare.py --expt build/release/expt \
        [--mixers gla deltaproduct] [--optimizers adamw muon] [--d-models 128 256] \
        [--repeats 3] [--steps 10] [--json out.json]

For every (mixer, optimizer, d_model) case it runs `expt bench` and peer_bench.py in turn, `repeats`
times (expt, peer, expt, peer, ...), each as a fresh process with OMP_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 (and torch.set_num_threads(1) on the peer side). The peer
runs at its best: its OpenBLAS forced (OPENBLAS_CORETYPE) to the fastest core type that computed
correct results in expt bench's sgemm probes (or --peer-core). It prints the median tokens/s of each
side, their ratio (also by process CPU time, steadier on a shared machine), expt's MFU (the median over
its processes of each one's MFU against its own measure of the machine's fp32 limit), the
optimizer's share of expt's step (measured, and at the model's BLAS rate: the share its products
alone would take), expt's peak RSS over the analytic bytes, and each side's BLAS time per step
against the rest of its step (expt: its kernels/gemm calls; peer: the aten BLAS operators under
torch.profiler), which tells a faster BLAS path from less work around it, and the ratio's ceiling: the
peer's step over expt's products alone, at their measured rate (no work outside BLAS) and at the
machine's limit, which tells a goal the code can still reach from one it cannot. The configs are
bench/configs/<mixer>.yaml (4 layers, length 256, batch 8) with d_model and optimizer.type set.
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


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env or PINNED).stdout
    return json.loads(out)


def peer_environment(expt_run, core=None):
    """The peer at its best: its OpenBLAS forced to the fastest core type that computed correct
    results in expt bench's probes (or `core`), OPENBLAS_L2_SIZE unset with it."""
    if core is None:
        good = [p for p in expt_run["sgemm_probes"]
                if p["backend"] == "openblas" and p["correct"] and not p["error"]]
        core = max(good, key=lambda p: p["gflops"])["kernel"]
    env = {k: v for k, v in PINNED.items() if k != "OPENBLAS_L2_SIZE"}
    env["OPENBLAS_CORETYPE"] = core
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--expt", default=os.path.join(ROOT, "build/release/expt"))
    ap.add_argument("--mixers", nargs="+", default=["gla", "deltaproduct"])
    ap.add_argument("--optimizers", nargs="+", default=["adamw", "muon"])
    ap.add_argument("--d-models", nargs="+", type=int, default=[128, 256])
    ap.add_argument("--set", action="append", default=[], dest="sets", help="extra override for both sides")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--peer-core", help="OpenBLAS core type for the peer (default: the fastest correct one "
                    "expt bench measured)")
    args = ap.parse_args()
    peer_types.check_choices(args.expt, mixers=args.mixers, optimizers=args.optimizers)

    rows, record = [], []
    header = ("mixer", "optimizer", "d_model", "expt tok/s", "peer tok/s", "ratio", "ratio (CPU time)", "expt MFU",
              "MFU (CPU time)", "opt share", "opt share at model rate", "RSS/analytic", "BLAS ms expt / peer",
              "outside BLAS ms expt / peer", "ratio ceiling: outside BLAS 0 / at the limit")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for mixer in args.mixers:
        for opt in args.optimizers:
            for d in args.d_models:
                config = os.path.join(ROOT, "bench/configs", f"{mixer}.yaml")
                sets = [f"model.d_model={d}", f"optimizer.type={opt}"] + args.sets
                set_args = [a for s in sets for a in ("--set", s)]
                steps = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
                expt_runs, peer_runs = [], []
                for _ in range(args.repeats):
                    expt_runs.append(run_json([args.expt, "bench", config, *set_args, *steps, "--format", "json"]))
                    peer_runs.append(run_json([sys.executable, os.path.join(HERE, "peer_bench.py"), config, "--expt",
                                               args.expt, *set_args, *steps],
                                              env=peer_environment(expt_runs[0], args.peer_core)))
                if expt_runs[0]["n_params"] != peer_runs[0]["n_params"]:
                    raise SystemExit(f"parameter counts differ: expt {expt_runs[0]['n_params']}, "
                                     f"peer {peer_runs[0]['n_params']}")
                e = statistics.median(r["tokens_per_s"] for r in expt_runs)
                p = statistics.median(r["tokens_per_s"] for r in peer_runs)
                e_cpu = statistics.median(r["tokens_per_cpu_s"] for r in expt_runs)
                p_cpu = statistics.median(r["tokens_per_cpu_s"] for r in peer_runs)
                mfu = statistics.median(r["mfu"] for r in expt_runs)
                mfu_cpu = statistics.median(r["mfu_cpu"] for r in expt_runs)
                share = statistics.median(r["phases"]["optimizer"]["share"] for r in expt_runs)
                share_arith = statistics.median(r["optimizer_arithmetic"]["share_at_model_rate"] for r in expt_runs)
                rss = statistics.median(r["memory"]["rss_over_analytic"] for r in expt_runs)
                e_blas = statistics.median(r["blas"]["s"] for r in expt_runs)
                e_out = statistics.median(r["blas"]["outside_s"] for r in expt_runs)
                p_blas = statistics.median(r["blas"]["s"] for r in peer_runs)
                p_out = statistics.median(r["step_s"] - r["blas"]["s"] for r in peer_runs)
                # What no work outside the products could beat: the peer's step over expt's products
                # alone, at their measured rate and at the machine's limit (each run's own probe).
                peer_step = statistics.median(r["step_s"] for r in peer_runs)
                at_limit = statistics.median(r["blas"]["flops"] / (1e9 * r["sgemm_peak_gflops"]) for r in expt_runs)
                ceiling_blas, ceiling_limit = peer_step / e_blas, peer_step / at_limit
                row = (mixer, opt, d, f"{e:.0f}", f"{p:.0f}", f"{e / p:.2f}", f"{e_cpu / p_cpu:.2f}",
                       f"{100 * mfu:.1f} %", f"{100 * mfu_cpu:.1f} %", f"{100 * share:.1f} %",
                       f"{100 * share_arith:.1f} %", f"{rss:.2f}", f"{1e3 * e_blas:.0f} / {1e3 * p_blas:.0f}",
                       f"{1e3 * e_out:.0f} / {1e3 * p_out:.0f}", f"{ceiling_blas:.2f} / {ceiling_limit:.2f}")
                print("| " + " | ".join(str(x) for x in row) + " |", flush=True)
                rows.append(row)
                record.append({"mixer": mixer, "optimizer": opt, "d_model": d, "expt_tokens_per_s": e,
                               "peer_tokens_per_s": p, "ratio": e / p, "expt_tokens_per_cpu_s": e_cpu,
                               "peer_tokens_per_cpu_s": p_cpu, "ratio_cpu": e_cpu / p_cpu, "expt_mfu": mfu,
                               "expt_mfu_cpu": mfu_cpu, "expt_optimizer_share": share,
                               "expt_optimizer_share_at_model_rate": share_arith,
                               "expt_rss_over_analytic": rss, "expt_blas_s": e_blas, "expt_outside_blas_s": e_out,
                               "peer_blas_s": p_blas, "peer_outside_blas_s": p_out,
                               "ratio_ceiling_outside_blas_zero": ceiling_blas,
                               "ratio_ceiling_at_limit": ceiling_limit,
                               "peer_openblas_core": peer_runs[0]["openblas_core"],
                               "machine": expt_runs[0]["machine"], "sgemm_peak_gflops": expt_runs[0]["sgemm_peak_gflops"],
                               "expt_runs": expt_runs, "peer_runs": peer_runs})
    if record:
        # Each expt process measures its own limit (its MFU is against it); on a VM whose speed
        # drifts the probes spread, so the line gives their range, not the first case's probe.
        peaks = [r["sgemm_peak_gflops"] for case in record for r in case["expt_runs"]]
        print(f"\nmachine: {record[0]['machine']}; sgemm peak per expt process {min(peaks):.1f}-{max(peaks):.1f} "
              f"GFLOP/s (each run's MFU is against its own); peer OpenBLAS core {record[0]['peer_openblas_core']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sets": args.sets, "repeats": args.repeats, "steps": args.steps, "cases": record}, f, indent=1)


if __name__ == "__main__":
    main()
