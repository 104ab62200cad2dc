#!/usr/bin/env bash
# Sharded SOAP and DCT-AdamW under a real mpirun (docs/distributed.md "Sharded optimizers"): with
# train.deterministic the gradient does not depend on the rank count, so a trial at 2 and 4 ranks,
# where each matrix is updated by its owner rank and broadcast (optimizer.shard: true, the
# default), gives metrics bit-identical to the 1-rank run, and checkpoints whose parameters and
# optimizer state (gathered from the owners) are bit-identical to the 1-rank checkpoints. A 2-rank
# run killed with SIGKILL after a checkpoint and rerun ends bit-identical too.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/trial.yaml" <<'YAML'
seed: 5
task: {type: word_problem, group: S3, seq_len: 12}
model: {d_model: 32, n_layers: 2, mixer: {type: attention, heads: 4}, mlp: {intermediate_size: 64}}
optimizer: {lr: 3.0e-3, weight_decay: 0.1}
train: {steps: 8, batch_size: 8, eval_every: 4, eval_batches: 1, checkpoint_every: 2, deterministic: true}
YAML
declare -A sets=(
  [soap]="--set optimizer.type=soap --set optimizer.precondition_frequency=2"
  [dct_adamw]="--set optimizer.type=dct_adamw --set optimizer.rank=4 --set optimizer.refresh_every=3 --set optimizer.on_refresh=remap"
)
run() {  # run <optimizer> <ranks> <out> [env...]
  local opt=$1 ranks=$2 out=$3
  # shellcheck disable=SC2086
  mpirun -np "$ranks" "$EXPT" run "$work/trial.yaml" ${sets[$opt]} --set train.ranks="$ranks" --progress quiet \
    --out "$work/$out" > "$work/$out.out" 2>&1 || die "$out failed: $(cat "$work/$out.out")"
}
# Starts a slowed-down 2-rank run in a new session and SIGKILLs every process of it once the
# checkpoint of step 4 is committed.
kill_after_step_4() {  # <optimizer> <out>
  local opt=$1 out=$2 sid
  # shellcheck disable=SC2086
  EXPT_TEST_STEP_DELAY_MS=800 setsid mpirun -np 2 -x EXPT_TEST_STEP_DELAY_MS "$EXPT" run "$work/trial.yaml" \
    ${sets[$opt]} --set train.ranks=2 --progress quiet --out "$work/$out" > "$work/$out.killed.out" 2>&1 &
  sid=$!
  wait_for_file "$work/$out/checkpoints/step-4/COMMIT" 120
  kill_session "$sid"
  [[ ! -e $work/$out/result.h5 ]] || die "$out finished before it was killed; the test proves nothing"
}

for opt in soap dct_adamw; do
  run $opt 1 $opt-1
  run $opt 2 $opt-2
  run $opt 4 $opt-4
  kill_after_step_4 $opt $opt-killed
  run $opt 2 $opt-killed
  "$EXPT_PYTHON" - "$work" $opt <<'PY' || die "$opt: the sharded runs differ from the 1-rank run"
import sys, pathlib, h5py, numpy as np
w, opt = pathlib.Path(sys.argv[1]), sys.argv[2]
def bits(x):
    return np.ascontiguousarray(x).tobytes()
def metrics(d):
    f = h5py.File(w / d / "result.h5", "r")
    return f["metrics/train"][:], f["metrics/eval"][:]
def state(d, step):  # every dataset of the checkpoint's parameters and optimizer state
    out = {}
    with h5py.File(w / d / "checkpoints" / f"step-{step}" / "state.h5", "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, bits(obj[()]))
                     if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("params", "optimizer") else None)
    return out
ref_train, ref_eval = metrics(f"{opt}-1")
assert len(ref_train) == 8 and np.all(np.isfinite(ref_train["loss"])), ref_train["loss"]
for run in (f"{opt}-2", f"{opt}-4", f"{opt}-killed"):
    train, ev = metrics(run)
    for ref, got, what in ((ref_train, train, "train"), (ref_eval, ev, "eval")):
        for name in ref.dtype.names:
            if name != "wall_s":
                assert bits(ref[name]) == bits(got[name]), f"{run}: {what} {name} differs"
    for step in (4, 6):  # the trainer keeps the last two
        a, b = state(f"{opt}-1", step), state(run, step)
        assert len(a) > 1 and a.keys() == b.keys(), (run, step, sorted(set(a) ^ set(b)))
        for key in a:
            assert a[key] == b[key], f"{run}: checkpoint step-{step} entry {key} differs"
    print(f"optimizer_shard_mpi: {opt}: {run} bit-identical to 1 rank (metrics, checkpoints 4 and 6)")
PY
done
echo "optimizer_shard_mpi: ok"
