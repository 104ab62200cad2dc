#!/usr/bin/env bash
# Data-parallel training under a real mpirun: a trial on 2 ranks (each a fixed half of the global
# batch, gradient buckets summed by MPI_Iallreduce during backward) follows the same trajectory as
# the same trial on 1 rank, up to float summation order; the same 2-rank trial over TCP only gives
# bit-identical metrics; and a mismatch between train.ranks and the launch is refused.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/trial.yaml" <<'YAML'
seed: 11
task: {type: word_problem, group: S3, seq_len: 12}
model: {d_model: 32, n_layers: 2, mixer: {type: attention, heads: 4}, mlp: {intermediate_size: 64}}
optimizer: {type: adamw, lr: 3.0e-3}
train: {steps: 30, batch_size: 8, eval_every: 10, eval_batches: 2}
YAML

"$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/one" > "$work/one.out" 2>&1 \
  || die "1-rank run failed: $(cat "$work/one.out")"
mpirun -np 2 "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --progress quiet --out "$work/two" \
  > "$work/two.out" 2>&1 || die "2-rank run failed: $(cat "$work/two.out")"

# The same 2-rank trial over TCP only (a stand-in for two hosts): the buckets' non-blocking
# reductions take the same algorithm whatever the transport, so the metrics are bit-identical.
mpirun -np 2 --mca btl self,tcp "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --progress quiet \
  --out "$work/two_tcp" > "$work/two_tcp.out" 2>&1 || die "2-rank TCP run failed: $(cat "$work/two_tcp.out")"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/two/result.h5" "$work/two_tcp/result.h5" \
  || die "2-rank run over TCP differs from shared memory"

"$EXPT_PYTHON" - "$work/one/result.h5" "$work/two/result.h5" <<'PY' || die "2-rank trajectory differs from 1-rank"
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["metrics/train"][:]
b = h5py.File(sys.argv[2], "r")["metrics/train"][:]
assert len(a) == len(b) == 30, (len(a), len(b))
rel = np.abs(a["loss"] - b["loss"]) / np.abs(a["loss"])
print(f"data_parallel_mpi: max relative loss difference 1 vs 2 ranks over 30 steps: {rel.max():.2e}")
assert rel.max() < 1e-4, rel.max()
assert not np.array_equal(a["loss"][:1], np.zeros(1))
PY

# Launch with 2 ranks while the config says 1: refused with a clear message, exit code 2.
set +e
mpirun -np 2 "$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/bad" > "$work/bad.out" 2>&1
rc=$?
set -e
[[ $rc -ne 0 ]] || die "rank-count mismatch was not refused"
grep -q "train.ranks is 1 but this run has 2 rank" "$work/bad.out" || die "no clear message: $(cat "$work/bad.out")"
echo "data_parallel_mpi: ok"
