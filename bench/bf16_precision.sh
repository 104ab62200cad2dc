#!/usr/bin/env bash
# train.precision fp32 against bf16 (docs/performance.md "bf16 mode"): `expt bench` on the GLA and
# DeltaProduct configs at d_model 128 and 256 (AdamW), the two precisions alternated ROUNDS times
# so that the shared machine's load falls on both alike; prints the median tokens per CPU second
# of the process of each and their ratio, and the BLAS time per step.
#   bench/bf16_precision.sh EXPT [ROUNDS=3] [STEPS=8]
set -euo pipefail
expt=${1:?usage: bf16_precision.sh EXPT [ROUNDS] [STEPS]}
rounds=${2:-3}
steps=${3:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for config in gla deltaproduct; do
  for d in 128 256; do
    for ((r = 0; r < rounds; ++r)); do
      for precision in fp32 bf16; do
        "$expt" bench "$root/bench/configs/$config.yaml" --steps "$steps" --warmup 2 --format json \
          --set model.d_model="$d" --set train.precision="$precision" 2> /dev/null \
          > "$out/$config-$d-$precision-$r.json"
      done
    done
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
print(f"{'config':<13} {'d':>4} {'fp32 tok/CPU-s':>15} {'bf16 tok/CPU-s':>15} {'ratio':>6} "
      f"{'fp32 BLAS ms':>13} {'bf16 BLAS ms':>13}")
for config in ("gla", "deltaproduct"):
    for d in (128, 256):
        runs = {p: [json.load(open(f"{out}/{config}-{d}-{p}-{r}.json")) for r in range(rounds)]
                for p in ("fp32", "bf16")}
        tok = {p: statistics.median(x["tokens_per_cpu_s"] for x in runs[p]) for p in runs}
        blas = {p: statistics.median(1e3 * x["blas"]["s"] for x in runs[p]) for p in runs}
        print(f"{config:<13} {d:>4} {tok['fp32']:>15.0f} {tok['bf16']:>15.0f} {tok['bf16'] / tok['fp32']:>6.2f} "
              f"{blas['fp32']:>13.1f} {blas['bf16']:>13.1f}")
PY
