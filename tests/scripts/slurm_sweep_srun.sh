#!/usr/bin/env bash
# `expt sweep` launched by Slurm's srun on a one-node cluster (tests/scripts/lib_slurm.sh): with the
# pmix plugin (`srun --mpi=pmix -n 3`: a coordinator and 2 groups of 1) the sweep directory is
# bit-identical to a one-process sweep's (compare_sweeps.py); without it (Debian's MpiDefault=none)
# every rank aborts in MPI_Init, which is why docs/sweeps.md and the README say --mpi=pmix.
# ctest-labels: slurm
source "$(dirname "$0")/lib.sh"
source "$scripts/lib_slurm.sh"
slurm_cluster_start

study="$EXPT_SOURCE_DIR/configs/sweep_small.yaml"
short=(--set base.train.steps=20 --set base.train.eval_every=10 --set base.train.checkpoint_every=10)

"$EXPT" sweep "$study" "${short[@]}" --out "$work/one" > "$work/one.out" 2>&1 || die "1-process sweep failed: $(cat "$work/one.out")"

# -O (overcommit): 3 ranks on this 2-core node.
if timeout 120 srun -O -n 3 "$EXPT" sweep "$study" "${short[@]}" --out "$work/no_pmix" > "$work/no_pmix.out" 2>&1; then
  die "srun without --mpi=pmix ran the sweep; MpiDefault=none was expected to fail in MPI_Init"
fi
grep -q "MPI_INIT" "$work/no_pmix.out" || die "srun without --mpi=pmix failed otherwise: $(cat "$work/no_pmix.out")"

timeout 300 srun -O --mpi=pmix -n 3 "$EXPT" sweep "$study" "${short[@]}" --out "$work/srun" > "$work/srun.out" 2>&1 ||
  die "srun --mpi=pmix -n 3 sweep failed: $(cat "$work/srun.out")"
grep -q "\[sweep\] start" "$work/srun.out" || die "no trial started under srun: $(cat "$work/srun.out")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/one" "$work/srun" || die "the srun sweep differs from the 1-process sweep"
echo "PASS: srun --mpi=pmix -n 3 sweep = 1-process sweep; srun without pmix fails in MPI_Init"
