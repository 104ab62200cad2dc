#!/usr/bin/env python3
"""Peak RSS against the analytic bytes (docs/performance.md): runs `expt bench` for GLA,
DeltaProduct and attention at d_model 128 and 256 (AdamW, plus Muon at 256) and prints one row
each. With --base, a second binary (e.g. an older build) is run on the same configs for a
before/after table.

    bench/memory_table.py --expt build/release/expt [--base OTHER_EXPT] [--steps 2]
"""
import argparse
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASES = [(mixer, d, "adamw") for d in (128, 256) for mixer in ("gla", "deltaproduct", "attention")]
CASES += [("gla", 256, "muon"), ("deltaproduct", 256, "muon")]


def memory(expt, mixer, d_model, optimizer, steps):
    out = subprocess.run([expt, "bench", str(ROOT / "bench" / "configs" / f"{mixer}.yaml"),
                          "--set", f"model.d_model={d_model}", "--set", f"optimizer.type={optimizer}",
                          "--steps", str(steps), "--warmup", "1", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["memory"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expt", required=True)
    ap.add_argument("--base", help="another expt binary to compare against")
    ap.add_argument("--steps", type=int, default=2)
    a = ap.parse_args()
    mib = 1024.0 * 1024.0
    print("| mixer | optimizer | d_model | analytic MiB | baseline MiB | peak RSS MiB | RSS / analytic | "
          "(RSS - baseline) / analytic |" + (" before: peak RSS MiB, RSS / analytic |" if a.base else ""))
    print("|---" * (9 if a.base else 8) + "|")
    for mixer, d, opt in CASES:
        m = memory(a.expt, mixer, d, opt, a.steps)
        row = (f"| {mixer} | {opt} | {d} | {m['analytic_bytes'] / mib:.1f} | {m['baseline_rss_bytes'] / mib:.1f} | "
               f"{m['peak_rss_bytes'] / mib:.1f} | {m['rss_over_analytic']:.2f} | "
               f"{m['rss_above_baseline_over_analytic']:.2f} |")
        if a.base:
            b = memory(a.base, mixer, d, opt, a.steps)
            row += f" {b['peak_rss_bytes'] / mib:.1f}, {b['rss_over_analytic']:.2f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
