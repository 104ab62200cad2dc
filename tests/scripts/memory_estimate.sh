#!/usr/bin/env bash
# The pre-flight memory estimate (experiments/trial/memory_estimate.hpp) against the peak RSS that
# `expt bench` measures, for every mixer (with AdamW) and every optimizer (with GLA) at two sizes:
# measured peak / estimate must lie within [1 / f, f], f = kMeasuredOverEstimate = 1.5, and the
# estimate's parts must add up to it. Prints the table docs/reliability.md quotes. M-FAC runs with a
# window of 4 and 5 steps, so that its whole window has been written (its pages are untouched
# until then) and the peak is the steady state.
# ctest-labels: slow
source "$(dirname "$0")/lib.sh"
factor=1.5
grep -q "kMeasuredOverEstimate = $factor;" "$EXPT_SOURCE_DIR/experiments/trial/memory_estimate.hpp" \
  || die "the factor here differs from kMeasuredOverEstimate in experiments/trial/memory_estimate.hpp"

cat > "$work/base.yaml" << 'EOF'
seed: 1
task: {type: word_problem, group: S5, seq_len: 64}
model: {d_model: 64, n_layers: 2, mixer: {type: gla}}
optimizer: {type: adamw}
train: {steps: 100, batch_size: 8}
EOF

cases=()
for mixer in attention gla deltanet deltaproduct gated_deltaproduct base_conv; do cases+=("$mixer adamw"); done
# Zoology's hybrid (decision 143): block 0 BaseConv, block 1 GLA, the estimate summed per block.
cases+=("hybrid adamw")
for optimizer in muon soap mfac dct_adamw; do cases+=("gla $optimizer"); done
# Two sizes: d_model 64 x length 64 x batch 8 (the runtime's fixed part is a large share), and
# d_model 192 x length 128 x batch 16 (activations and optimizer state dominate).
sizes=("64 64 8" "192 128 16")

echo "mixer optimizer d_model length batch estimate_MiB peak_MiB peak/estimate" > "$work/table.txt"
for case in "${cases[@]}"; do
  read -r mixer optimizer <<< "$case"
  for size in "${sizes[@]}"; do
    read -r d length batch <<< "$size"
    name="${mixer}_${optimizer}_$d"
    extra=()
    [[ $optimizer == mfac ]] && extra=(--set optimizer.window=4)
    type=$mixer
    if [[ $mixer == hybrid ]]; then
      type=gla
      extra=(--set model.hybrid_mixer.type=base_conv --set 'model.hybrid_layers=[0]')
    fi
    "$EXPT" bench "$work/base.yaml" --set model.mixer.type="$type" --set optimizer.type="$optimizer" \
      --set model.d_model="$d" --set task.seq_len="$length" --set train.batch_size="$batch" \
      "${extra[@]}" --steps 3 --warmup 2 --format json > "$work/$name.json" 2> "$work/$name.err" \
      || die "expt bench $name failed: $(cat "$work/$name.err")"
    "$EXPT_PYTHON" - "$work/$name.json" "$factor" "$mixer" "$optimizer" "$d" "$length" "$batch" \
      >> "$work/table.txt" << 'PY' || die "$name: $(tail -1 "$work/table.txt")"
import json, sys
m = json.load(open(sys.argv[1]))["memory"]
f = float(sys.argv[2])
mib = 1024.0 * 1024.0
est, peak = m["estimate_bytes"], m["peak_rss_bytes"]
assert abs(sum(m["estimate_parts"].values()) - est) <= 1e-9 * est, m
assert abs(m["rss_over_estimate"] - peak / est) < 1e-9, m
print(" ".join(sys.argv[3:8]) + f" {est / mib:.1f} {peak / mib:.1f} {peak / est:.2f}")
assert 1 / f <= peak / est <= f, f"peak / estimate {peak / est:.2f} outside [1/{f}, {f}]: {m}"
PY
  done
done
column -t "$work/table.txt"
