#!/usr/bin/env bash
# Data-parallel throughput: the same trial (same global batch) on 1 rank and on 2 ranks, on
# 2 ranks with the blocking reference reduction, and with train.deterministic at 1 and 2 ranks. Prints tokens/s of the training loop (from the
# metrics rows, first to last step, one eval at the end), the 2-vs-1 speedup (goal >= 1.8 on a
# 2-core machine), and the fraction of allreduce time hidden behind backward:
#   1 - (overlapped: time inside backward + exposed wait) / (blocking allreduce time),
# both per step, from the trainer's "gradient allreduce" log line.
#   bench/data_parallel.sh [path/to/expt] [steps]
set -euo pipefail
EXPT=${1:-build/release/expt}
STEPS=${2:-60}
work=$(mktemp -d /tmp/expt-bench-dp.XXXXXX)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cat > "$work/trial.yaml" <<YAML
seed: 1
task: {type: word_problem, group: S5, seq_len: 64, eval_lengths: [64]}
model: {d_model: 128, n_layers: 4, mixer: {type: attention, heads: 4}, mlp: {intermediate_size: 384}}
optimizer: {type: adamw, lr: 1.0e-3}
train: {steps: $STEPS, batch_size: 32, eval_every: $STEPS, eval_batches: 1}
YAML
echo "load before: $(uptime)"
"$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/one" > /dev/null
mpirun -np 2 "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --progress quiet --out "$work/two" > /dev/null
EXPT_GRAD_REDUCTION=blocking mpirun -np 2 -x EXPT_GRAD_REDUCTION "$EXPT" run "$work/trial.yaml" --set train.ranks=2 \
  --progress quiet --out "$work/two_blocking" > /dev/null
# train.deterministic: the cost of fixed micro-shards (8 shards of 4 sequences) at 1 and 2 ranks.
"$EXPT" run "$work/trial.yaml" --set train.deterministic=true --progress quiet --out "$work/det1" > /dev/null
mpirun -np 2 "$EXPT" run "$work/trial.yaml" --set train.ranks=2 --set train.deterministic=true --progress quiet \
  --out "$work/det2" > /dev/null
echo "load after:  $(uptime)"
/usr/bin/python3 - "$work" <<'PY'
import sys, re, h5py, pathlib
w = pathlib.Path(sys.argv[1])
def tps(d):
    t = h5py.File(w / d / "result.h5", "r")["metrics/train"][:]
    return (t["tokens"][-1] - t["tokens"][0]) / (t["wall_s"][-1] - t["wall_s"][0])
def reduction(d):
    line = [l for l in open(w / d / "log.txt") if "gradient allreduce" in l][-1]
    inside, exposed = map(float, re.findall(r"([0-9.]+) ms/step", line))
    return line.split("Z ", 1)[1].strip(), inside, exposed
one, two, blocking = tps("one"), tps("two"), tps("two_blocking")
print(f"tokens/s: 1 rank {one:.0f}, 2 ranks overlapped {two:.0f} ({two / one:.2f}x), "
      f"2 ranks blocking {blocking:.0f} ({blocking / one:.2f}x)")
det1, det2 = tps("det1"), tps("det2")
print(f"train.deterministic tokens/s: 1 rank {det1:.0f} ({det1 / one:.2f}x the default 1 rank), "
      f"2 ranks {det2:.0f} ({det2 / two:.2f}x the default 2 ranks)")
line_o, inside_o, exposed_o = reduction("two")
line_b, _, exposed_b = reduction("two_blocking")
print("overlapped:", line_o)
print("blocking:  ", line_b)
print(f"allreduce hidden behind backward: {1 - (inside_o + exposed_o) / exposed_b:.2f} "
      f"(overlapped {inside_o + exposed_o:.2f} ms/step on the critical path vs blocking {exposed_b:.2f} ms/step)")
PY
