#!/usr/bin/env bash
# ctest-labels: slow
# The PyTorch peer of bench/peer/ is the same model and optimizer as expt: for each mixer (GLA,
# DeltaProduct, gated DeltaProduct with 3 steps, attention) with AdamW or Muon at a tiny size, loaded
# with expt's initial weights, it gives the same loss, gradients, first update and second loss
# (bench/peer/check_same_model.py). Skipped (exit 77) when python3-torch is not installed
# (scripts/install-deps.sh installs it).
source "$(dirname "$0")/lib.sh"
"$EXPT_PYTHON" -c "import torch" 2> /dev/null || { echo "python3-torch not installed: skipped"; exit 77; }
tiny=(--set model.d_model=32 --set model.n_layers=2 --set task.seq_len=40 --set train.batch_size=2
      --set model.mlp.intermediate_size=64)
chunk=(--set model.mixer.chunk_size=16)  # 40 = 2.5 chunks: a partial last chunk
check() {
  "$EXPT_PYTHON" "$EXPT_SOURCE_DIR/bench/peer/check_same_model.py" --expt "$EXPT" "$@" > "$work/check.txt" 2>&1 \
    || die "peer differs from expt for $*: $(cat "$work/check.txt")"
  tail -1 "$work/check.txt"
}
configs=$EXPT_SOURCE_DIR/bench/configs
check "$configs/gla.yaml" "${tiny[@]}" "${chunk[@]}" --set optimizer.type=adamw
check "$configs/gla.yaml" "${tiny[@]}" "${chunk[@]}" --set optimizer.type=muon --set model.mixer.use_short_conv=true \
  --set model.tie_embeddings=false
check "$configs/deltaproduct.yaml" "${tiny[@]}" "${chunk[@]}" --set optimizer.type=muon
check "$configs/deltaproduct.yaml" "${tiny[@]}" "${chunk[@]}" --set optimizer.type=adamw \
  --set model.mixer.type=gated_deltaproduct --set model.mixer.num_householder=3
check "$configs/attention.yaml" "${tiny[@]}" --set optimizer.type=muon
