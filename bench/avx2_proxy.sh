#!/usr/bin/env bash
# The AVX2 code paths against the PyTorch peer on an AVX-512 machine (docs/performance.md, "The AVX2
# code paths on the Zen 5"): a proxy for an AVX2-only CPU such as a Zen 3 EPYC, not a substitute.
#   1. builds `expt` for Zen 3 (-march=znver3: AVX2 + FMA, no AVX-512) in build/znver3;
#   2. runs bench/peer/compare.py with that binary and both sides' GEMM libraries limited to AVX2
#      (LIBXSMM_TARGET=hsw, DNNL_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell; the peer on OpenBLAS's
#      Haswell kernels);
#   3. prints each case's MFU against the machine's AVX2 limit: the best AVX2 sgemm probe of the
#      run (oneDNN limited to AVX2 in process, OpenBLAS Haswell in a child). compare.py's own MFU
#      column is against the AVX-512 limit its other probes measure.
#   bench/avx2_proxy.sh [OUT_JSON=avx2_proxy.json] [compare.py options, default: --mixers gla
#                       deltaproduct --optimizers adamw --d-models 128 256 --repeats 3 --steps 4 --warmup 1]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
json=${1:-avx2_proxy.json}
shift || true
options=("$@")
if [[ ${#options[@]} -eq 0 ]]; then
  options=(--mixers gla deltaproduct --optimizers adamw --d-models 128 256 --repeats 3 --steps 4 --warmup 1)
fi
cd "$root"
cmake --preset release -B build/znver3 \
  -DCMAKE_CXX_FLAGS_RELEASE="-O3 -march=znver3 -DNDEBUG -Wno-maybe-uninitialized" > /dev/null
cmake --build build/znver3 -j "$(nproc)" --target expt > /dev/null
env LIBXSMM_TARGET=hsw DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell /usr/bin/python3 bench/peer/compare.py \
  --expt build/znver3/expt --peer-core Haswell --json "$json" "${options[@]}"
/usr/bin/python3 - "$json" <<'PY'
import json, statistics, sys
report = json.load(open(sys.argv[1]))
print("\nMFU against the AVX2 limit (median over runs; each run against its own best AVX2 probe):")
print(f"{'mixer':<13} {'optimizer':<9} {'d_model':>7} {'ratio':>6} {'AVX2 limit GFLOP/s':>19} {'MFU':>6}  runs")
for case in report["cases"]:
    per_run = []
    for run in case["expt_runs"]:
        limit = max(p["gflops"] for p in run["sgemm_probes"] if p["correct"] and p["kernel"] in ("avx2", "Haswell"))
        per_run.append((run["achieved_gflops"], limit))
    mfu = [100 * achieved / limit for achieved, limit in per_run]
    print(f"{case['mixer']:<13} {case['optimizer']:<9} {case['d_model']:>7} {case['ratio']:>6.2f} "
          f"{max(limit for _, limit in per_run):>19.1f} {statistics.median(mfu):>5.1f}%  "
          + ", ".join(f"{m:.1f}" for m in mfu))
PY
