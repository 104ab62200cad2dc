#!/usr/bin/env bash
# Muon's sharded step under a real mpirun (docs/optimizers.md "Distributed"): a 2-rank
# trial where each matrix's Newton-Schulz runs on one owner rank and is broadcast
# (optimizer.shard: true, the default) gives bit-identical parameters to the same 2-rank trial
# where every rank computes every matrix (shard: false), at every checkpoint, and the same losses.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/trial.yaml" <<'YAML'
seed: 5
task: {type: word_problem, group: S3, seq_len: 12}
model: {d_model: 32, n_layers: 2, mixer: {type: attention, heads: 4}, mlp: {intermediate_size: 64}}
optimizer: {type: muon, lr: 0.02, weight_decay: 0.1}
train: {steps: 6, batch_size: 8, ranks: 2, eval_every: 6, eval_batches: 1, checkpoint_every: 2}
YAML
for shard in true false; do
  mpirun -np 2 "$EXPT" run "$work/trial.yaml" --set optimizer.shard=$shard --progress quiet --out "$work/$shard" \
    > "$work/$shard.out" 2>&1 || die "shard=$shard run failed: $(cat "$work/$shard.out")"
done
"$EXPT_PYTHON" - "$work/true" "$work/false" <<'PY' || die "the sharded Muon run differs from the unsharded one"
import sys, h5py, numpy as np
a, b = sys.argv[1], sys.argv[2]
for step in (2, 4):
    pa = h5py.File(f"{a}/checkpoints/step-{step}/state.h5", "r")["params"][()]
    pb = h5py.File(f"{b}/checkpoints/step-{step}/state.h5", "r")["params"][()]
    assert pa.tobytes() == pb.tobytes(), (step, np.abs(pa - pb).max())
la = h5py.File(f"{a}/result.h5", "r")["metrics/train"]["loss"]
lb = h5py.File(f"{b}/result.h5", "r")["metrics/train"]["loss"]
assert len(la) == 6 and np.array_equal(la, lb), (la, lb)
assert la[-1] < la[0], la
PY
echo "muon_shard_mpi: ok"
