#!/usr/bin/env bash
# Optimizer step vs its BLAS floor (bench/optimizer_step.cpp): runs the step and floor benchmarks
# (CPU time, one BLAS thread) and prints, per optimizer and parameter set, the step time, the time
# of the BLAS calls it makes measured alone in the same run, and their ratio (goal <= 1.3x).
#   bench/optimizer_step.sh [path/to/bench_optimizer_step] [extra benchmark flags]
# e.g. --benchmark_filter='model_' for the model rows only, --benchmark_repetitions=3 for medians.
set -euo pipefail
BENCH=${1:-build/release/bench/bench_optimizer_step}
shift || true
json=$(mktemp /tmp/expt-bench-opt.XXXXXX.json)
trap 'rm -f "$json"' EXIT
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
filter='^(model|matrix)_(step|floor)/(adamw|muon|soap|dct_adamw|soap_per_step)(/|$)'
"$BENCH" --benchmark_filter="$filter" --benchmark_format=json --benchmark_out="$json" \
  --benchmark_out_format=json "$@" > /dev/null
python3 - "$json" <<'PY'
import json, re, sys
rows = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
        continue
    m = re.match(r"(model|matrix)_(step|floor)/(\w+)(?:/(\d+))?", b["run_name"] if "run_name" in b else b["name"])
    if not m or b.get("error_occurred"):
        continue
    scope, kind, opt, n = m.groups()
    ms = b["cpu_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    rows.setdefault((opt, "model d256" if scope == "model" else f"{n}x{n}"), {})[kind] = ms
order = ["adamw", "muon", "soap", "soap_per_step", "dct_adamw"]
def key(k):
    opt, shape = k
    return (order.index(opt) if opt in order else 99, 0 if shape.startswith("model") else int(shape.split("x")[0]))
print(f"{'optimizer':<14} {'parameters':<11} {'step ms':>9} {'BLAS ms':>9} {'ratio':>6}")
for k in sorted(rows, key=key):
    r = rows[k]
    step, floor = r.get("step"), r.get("floor")
    ratio = f"{step / floor:6.2f}" if step and floor else "     -"
    print(f"{k[0]:<14} {k[1]:<11} {step or float('nan'):9.3f} {floor if floor else float('nan'):9.3f} {ratio}")
PY
