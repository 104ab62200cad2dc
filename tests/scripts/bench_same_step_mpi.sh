#!/usr/bin/env bash
# `expt bench` times the trainer's own step on several ranks (docs/decisions.md 74): under
# mpirun -np 2, with Muon (sharded Newton-Schulz) and the overlapped gradient buckets, the losses
# bench reports for its warmup + timed steps are, as floats, the training losses `expt run` writes
# for the same config and launch: bench runs the step `expt run` runs, on the same data slices.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/trial.yaml" <<'YAML'
seed: 7
task: {type: word_problem, group: S3, seq_len: 12}
model: {d_model: 32, n_layers: 2, mixer: {type: gla}, mlp: {intermediate_size: 64}}
optimizer: {type: muon, lr: 2.0e-2}
schedule: {type: cosine, warmup: 1}
train: {steps: 4, batch_size: 8, eval_every: 2, eval_batches: 1, grad_clip: 1.0, ranks: 2}
YAML

mpirun -np 2 "$EXPT" bench "$work/trial.yaml" --steps 3 --warmup 1 --format json > "$work/bench.json" \
  2> "$work/bench.err" || die "expt bench on 2 ranks failed: $(cat "$work/bench.err")"
mpirun -np 2 "$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/run" > "$work/run.out" 2>&1 \
  || die "expt run on 2 ranks failed: $(cat "$work/run.out")"

"$EXPT_PYTHON" - "$work/bench.json" "$work/run/result.h5" <<'PY' || die "bench and run took different steps"
import json, sys
import h5py, numpy as np
j = json.load(open(sys.argv[1]))
assert j["config"]["ranks"] == 2, j["config"]
bench = np.array(j["losses"], dtype=np.float32)
with h5py.File(sys.argv[2]) as f:
    run = f["metrics/train"]["loss"][:]
assert len(bench) == len(run) == 4, (bench, run)
assert np.array_equal(bench, run), (bench.tolist(), run.tolist())
print("bench and run losses on 2 ranks:", run.tolist())
PY
echo "expt bench on 2 ranks runs the trainer's step"
