#!/usr/bin/env bash
# ctest-labels: slow
# `expt worker` gives what `expt sweep` gives (docs/distributed.md "Workers and leases"): two local
# workers on one directory give a result directory bit-identical to a one-process `expt sweep`
# (compare_sweeps.py: every metric row, every summary, the trial set, sweep.h5), for a grid and for
# coordinate descent (whose rounds the workers plan as they find the previous one finished, each
# round recorded once); a 2-rank worker under mpirun equals the 2-rank groups of an mpirun
# `expt sweep`. The lease torture is worker_torture.sh.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

study=$EXPT_SOURCE_DIR/tests/fixtures/small_grid_study.yaml
"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"

# ---- two workers ----
two_workers "$study" "$work/two" 0
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/two" || die "two workers differ from one sweep"
for f in "$work"/two.w*.out; do grep -q "start" "$f" || die "a worker trained nothing: $(cat "$f")"; done

# ---- a study run by a worker is analysed while it runs: sweep.h5 is written after each trial ----
EXPT_TEST_STEP_DELAY_MS=25 "$EXPT" worker "$study" --out "$work/live" > "$work/live.out" 2>&1 &
live=$!
wait_for_file "$work/live/sweep.h5" 60
kill -0 $live 2> /dev/null || die "the worker ended before a live look (make its trials slower): $(cat "$work/live.out")"
"$EXPT" analyze "$work/live" > "$work/live-analyze.out" 2>&1 || die "expt analyze of a running worker's study failed: $(cat "$work/live-analyze.out")"
"$EXPT_PYTHON" - "$work/live/sweep.h5" <<'PY' || die "the live sweep.h5 is not a view of a running study"
import sys, h5py
states = [s.decode() for s in h5py.File(sys.argv[1], "r")["trials"]["status"]]
assert len(states) == 6 and 1 <= states.count("COMPLETED") < 6, states
PY
wait $live || die "the live worker failed: $(cat "$work/live.out")"

cat > "$work/cd.yaml" <<'YAML'
study: leases_cd
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {type: adamw, lr: 1.0e-3, weight_decay: 0.1}
  train: {steps: 12, batch_size: 8, eval_every: 6, eval_batches: 1}
search:
  strategy: coordinate_descent
  seeds: [1, 2]
  space: {optimizer.lr: [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2]}
YAML
"$EXPT" sweep "$work/cd.yaml" --out "$work/cd-ref" > "$work/cd-ref.out" 2>&1 || die "CD sweep failed: $(cat "$work/cd-ref.out")"
two_workers "$work/cd.yaml" "$work/cd" 0
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/cd-ref" "$work/cd" || die "CD workers differ from one sweep"
rounds=$(ls "$work/cd/coordinator/rounds" | wc -l)
((rounds >= 2)) || die "coordinate descent planned only $rounds round(s); the test needs a second one"
cmp <(cat "$work"/cd-ref/coordinator/rounds/*) <(cat "$work"/cd/coordinator/rounds/*) || die "CD round records differ"
grep -qi "warning" "$work"/cd-?.out && die "a worker warned: $(cat "$work"/cd-?.out)"

mpirun -np 3 "$EXPT" sweep "$study" --set sweep.ranks_per_trial=2 --out "$work/mpi2" > "$work/mpi2.out" 2>&1 \
  || die "2-rank mpirun sweep failed: $(cat "$work/mpi2.out")"
mpirun -np 2 "$EXPT" worker "$study" --set sweep.ranks_per_trial=2 --out "$work/worker2" > "$work/worker2.out" 2>&1 \
  || die "2-rank worker failed: $(cat "$work/worker2.out")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/mpi2" "$work/worker2" || die "the 2-rank worker differs from the mpirun sweep"

echo "worker_sweep: ok"
