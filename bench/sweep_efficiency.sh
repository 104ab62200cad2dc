#!/usr/bin/env bash
# Sweep efficiency: a grid of 40 short trials (AdamW, 10 learning rates x 4 seeds) under
# `mpirun -np 3` (a coordinator and 2 groups of 1 rank), or run by 2 local `expt worker` processes
# (mode `workers`: leases, no coordinator). Prints the fraction of the worker ranks' time spent
# training: sum over trials of the trainer's wall time (its training loop, evals and checkpoints
# included; model set-up, result files and handout excluded) / (sweep wall time x 2). Goal: >= 0.95.
#   bench/sweep_efficiency.sh [path/to/expt] [steps per trial] [mpirun|workers]
set -euo pipefail
EXPT=${1:-build/release/expt}
STEPS=${2:-200}
MODE=${3:-mpirun}
work=$(mktemp -d /tmp/expt-bench-sweep.XXXXXX)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cat > "$work/study.yaml" <<YAML
study: bench_sweep40
base:
  task: {type: word_problem, group: Z5, seq_len: 16, eval_lengths: [16]}
  model: {d_model: 32, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 64}}
  optimizer: {type: adamw, weight_decay: 0.1}
  schedule: {type: cosine, warmup: 10}
  train: {steps: $STEPS, batch_size: 16, eval_every: $STEPS, eval_batches: 2}
search:
  strategy: grid
  seeds: [1, 2, 3, 4]
  space:
    optimizer.lr: {min: 1.0e-4, max: 1.0e-1, num: 10, log: true}
sweep: {ranks_per_trial: 1, max_attempts: 1}
YAML
echo "load before: $(uptime)"
start=$(date +%s.%N)
if [[ $MODE == workers ]]; then
  "$EXPT" worker "$work/study.yaml" --out "$work/sweep" > "$work/worker1.out" 2>&1 &
  w1=$!
  "$EXPT" worker "$work/study.yaml" --out "$work/sweep" > "$work/worker2.out" 2>&1 &
  w2=$!
  wait $w1
  wait $w2
else
  mpirun -np 3 "$EXPT" sweep "$work/study.yaml" --out "$work/sweep" > "$work/sweep.out" 2>&1
fi
end=$(date +%s.%N)
echo "load after:  $(uptime)"
/usr/bin/python3 - "$work/sweep" "$start" "$end" "$MODE" <<'PY'
import sys, json, h5py, pathlib
d = pathlib.Path(sys.argv[1])
wall = float(sys.argv[3]) - float(sys.argv[2])
mode = sys.argv[4]
status = json.load(open(d / "status.json"))
assert status["counts"]["COMPLETED"] == 40, status["counts"]
train_s = 0.0
for t in status["trials"]:
    with h5py.File(d / "trials" / t["id"] / "result.h5", "r") as f:
        train_s += float(f["summary"].attrs["wall_s"])
workers = 2
print(f"sweep of 40 trials x {status['trials'][0]['steps']} steps ({mode}): wall {wall:.1f} s, "
      f"trainer time {train_s:.1f} s over {workers} worker ranks")
print(f"fraction of worker-rank time spent training: {train_s / (wall * workers):.3f}", end="")
# mpirun: also of the coordinator's own elapsed time (without mpirun's start-up); a worker's
# status.json holds the elapsed time of the worker that wrote it last.
print(f" (of the coordinator's elapsed time: {train_s / (status['elapsed_s'] * workers):.3f})" if mode == "mpirun" else "")
PY
