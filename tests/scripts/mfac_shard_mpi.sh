#!/usr/bin/env bash
# Column-sharded M-FAC under a real mpirun (docs/optimizers.md "Distributed"),
# with train.deterministic so that the gradients are bit-identical at 1 and 2 ranks:
#  - 2 ranks with optimizer.shard: false (every rank the whole window) equal 1 rank bit for bit;
#  - 2 ranks with shard: true (each rank half of the window's columns) follow 1 rank within
#    rounding: the Gram rows are summed over the ranks in another order, so not bitwise;
#  - the sharded run killed by an injected failure at step 5 and rerun resumes from its step-4
#    checkpoint (the window gathered to rank 0) and ends bit-identical to the uninterrupted run.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/trial.yaml" <<'YAML'
seed: 5
task: {type: word_problem, group: S3, seq_len: 12}
model: {d_model: 32, n_layers: 2, mixer: {type: attention, heads: 4}, mlp: {intermediate_size: 64}}
optimizer: {type: mfac, lr: 1.0e-2, window: 4, damping: 1.0e-3, momentum: 0.5, weight_decay: 0.01}
train: {steps: 8, batch_size: 8, eval_every: 8, eval_batches: 1, checkpoint_every: 2, deterministic: true}
YAML
"$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/one" > "$work/one.out" 2>&1 \
  || die "1-rank run failed: $(cat "$work/one.out")"
for shard in true false; do
  mpirun -np 2 "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --set optimizer.shard=$shard --progress quiet \
    --out "$work/$shard" > "$work/$shard.out" 2>&1 || die "shard=$shard run failed: $(cat "$work/$shard.out")"
done
mpirun -np 2 -x EXPT_TEST_THROW_AT_STEP=5 "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --progress quiet \
  --out "$work/resumed" > "$work/failed.out" 2>&1 && die "the injected failure did not fail the run"
mpirun -np 2 "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --progress quiet --out "$work/resumed" \
  > "$work/resumed.out" 2>&1 || die "resumed run failed: $(cat "$work/resumed.out")"
[[ $(grep -c '"event":"start"' "$work/resumed/attempts.jsonl") -eq 2 ]] || die "expected 2 attempts"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/true/result.h5" "$work/resumed/result.h5" \
  || die "the resumed sharded run differs from the uninterrupted one"

"$EXPT_PYTHON" - "$work" <<'PY' || die "the 2-rank M-FAC runs do not follow the 1-rank run"
import sys, h5py, numpy as np
w = sys.argv[1]
def params(run, step):
    return h5py.File(f"{w}/{run}/checkpoints/step-{step}/state.h5", "r")["params"][()]
def loss(run):
    return h5py.File(f"{w}/{run}/result.h5", "r")["metrics/train"]["loss"]
for step in (4, 6):
    one, rep, sh = params("one", step), params("false", step), params("true", step)
    assert one.tobytes() == rep.tobytes(), ("replicated", step, np.abs(one - rep).max())
    rel = np.abs(one - sh).max() / np.abs(one).max()
    assert rel < 1e-4, ("sharded", step, rel)
    print(f"step {step}: sharded vs 1 rank max |diff| / max |theta| = {rel:.2e}")
lo, lr, ls = loss("one"), loss("false"), loss("true")
assert len(lo) == 8 and np.array_equal(lo, lr), (lo, lr)
assert np.allclose(lo, ls, rtol=1e-4, atol=0), (lo, ls)
assert lo[-1] < lo[0], lo
g = h5py.File(f"{w}/true/checkpoints/step-6/state.h5", "r")
print("sharded checkpoint window", g["optimizer/block0/G"].shape, "momentum", g["optimizer/momentum"].shape)
PY
echo "mfac_shard_mpi: ok"
