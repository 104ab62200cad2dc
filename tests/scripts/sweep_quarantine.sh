#!/usr/bin/env bash
# Stop signals and damaged files (docs/reliability.md):
# 1. SIGTERM to a sweep under mpirun: the running trials checkpoint at the next step boundary and
#    stop; SIGINT to a one-process sweep: exit code 130 (128 + signal).
# 2. Damage in recomputable data: a checkpoint without its COMMIT, a corrupted and a truncated
#    metrics segment, a result.h5 of garbage and a truncated one. Each is detected, moved to
#    trials/<id>/quarantine/, reported (log.txt, attempts.jsonl, status.json, the final summary),
#    and the rerun sweep equals an uninterrupted one bit for bit.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/study.yaml" <<'YAML'
study: quarantine
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.1}
  schedule: {type: cosine, warmup: 5}
  train: {steps: 40, batch_size: 8, eval_every: 10, eval_batches: 1, checkpoint_every: 5}
search:
  strategy: grid
  seeds: [1, 2]
sweep: {ranks_per_trial: 1, max_attempts: 2}
YAML
study=$work/study.yaml
faults=0

"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"

# ---- 1. SIGTERM under mpirun: both trials (one per group) checkpoint and stop ----
EXPT_TEST_STEP_DELAY_MS=60 mpirun -np 3 "$EXPT" sweep "$study" --out "$work/d" > "$work/term.out" 2>&1 &
pid=$!
for ((i = 0; i < 2400; i++)); do
  [[ $(compgen -G "$work/d/trials/*/checkpoints/step-15/COMMIT" | wc -l) -eq 2 ]] && break
  sleep 0.05
done
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
faults=$((faults + 1))
[[ $rc -ne 0 ]] || die "a sweep stopped by SIGTERM exited 0"
grep -q "sweep stopped by SIGTERM (mpirun forwards Ctrl-C and hang-up as SIGTERM); the running trials wrote a checkpoint, rerun the same command to resume" "$work/term.out" \
  || die "no stop message: $(cat "$work/term.out")"
for t in "$work"/d/trials/*; do
  grep -q "stopped by SIGTERM (mpirun forwards Ctrl-C and hang-up as SIGTERM) at step" "$t/log.txt" || die "$t/log.txt: no stop line"
  stop_step=$(sed -n 's/.*stopped by SIGTERM (mpirun forwards Ctrl-C and hang-up as SIGTERM) at step \([0-9]*\);.*/\1/p' "$t/log.txt")
  [[ -e $t/checkpoints/step-$stop_step/COMMIT ]] || die "$t: no checkpoint at the stop step $stop_step"
  [[ ! -e $t/result.h5 ]] || die "$t: finished before the signal; the test proves nothing"
done

# ---- 2. Damage: per trial, drop the newest checkpoint's COMMIT and damage the segment after the
# one before it (trial 1: bytes overwritten; trial 2: truncated). Both are recomputed on resume. ----
n=0
for t in "$work"/d/trials/*; do
  n=$((n + 1))
  newest=$(ls "$t/checkpoints" | sed 's/step-//' | sort -n | tail -1)
  previous=$(ls "$t/checkpoints" | sed 's/step-//' | sort -n | tail -2 | head -1)
  rm "$t/checkpoints/step-$newest/COMMIT"
  seg="$t/metrics/seg-1-$((previous + 1)).h5"
  [[ -e $seg ]] || die "expected segment $seg"
  if ((n == 1)); then
    dd if=/dev/urandom of="$seg" bs=512 count=1 conv=notrunc status=none
  else
    truncate -s $(($(stat -c %s "$seg") / 2)) "$seg"
  fi
  faults=$((faults + 2))
done
mpirun -np 3 "$EXPT" sweep "$study" --out "$work/d" > "$work/resume.out" 2>&1 \
  || die "resumed sweep failed: $(cat "$work/resume.out")"
for t in "$work"/d/trials/*; do
  ls "$t/quarantine" | grep -q '^step-[0-9]*-' || die "$t: uncommitted checkpoint not quarantined"
  ls "$t/quarantine" | grep -q '^seg-1-[0-9]*\.h5-' || die "$t: damaged segment not quarantined"
  grep -q "quarantined unreadable metrics segment" "$t/log.txt" || die "$t/log.txt does not report the segment"
  grep -q '"event":"quarantine"' "$t/attempts.jsonl" || die "$t/attempts.jsonl does not report the quarantine"
done
[[ $(grep -c "quarantined (damaged, kept aside)" "$work/resume.out") -ge 4 ]] \
  || die "the sweep summary does not list the quarantined files: $(cat "$work/resume.out")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/d" || die "results changed by recomputable damage"

# ---- 3. Result files that will not open: garbage, and truncated. Rebuilt, and equal. ----
ids=("$work"/d/trials/*)
head -c 4000 /dev/urandom > "${ids[0]}/result.h5"
truncate -s 1000 "${ids[1]}/result.h5"
faults=$((faults + 2))
# The first trial also loses its final checkpoint (as a directory written before decision 111 has
# none), so its rebuild trains again from step 35 and the SIGINT below lands mid-training; the
# second is rebuilt from its final checkpoint at step 40 without training.
rm -r "${ids[0]}/checkpoints/step-40"
# SIGINT while the first trial is being rebuilt (slowed down), then a clean rerun.
EXPT_TEST_STEP_DELAY_MS=100 "$EXPT" sweep "$study" --out "$work/d" > "$work/result.out" 2>&1 &
pid=$!
for ((i = 0; i < 2400; i++)); do
  compgen -G "${ids[0]}/quarantine/result.h5-*" > /dev/null && break
  sleep 0.05
done
sleep 0.2
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e
faults=$((faults + 1))
[[ $rc -eq 130 ]] || die "SIGINT: expected exit code 130, got $rc: $(cat "$work/result.out")"
grep -q "stopped by SIGINT (Ctrl-C) at step" "${ids[0]}/log.txt" || die "no SIGINT stop line in the trial log"
"$EXPT" sweep "$study" --out "$work/d" > "$work/result2.out" 2>&1 || die "rebuild failed: $(cat "$work/result2.out")"
for t in "${ids[@]}"; do
  ls "$t/quarantine" | grep -q '^result\.h5-' || die "$t: unreadable result.h5 not quarantined"
done
grep -q "quarantined unreadable result" "${ids[0]}/log.txt" || die "log.txt does not report the result file"
grep -q "resuming from step 40" "${ids[1]}/log.txt" || die "the second result was not rebuilt from the final checkpoint"
"$EXPT_PYTHON" - "$work/d/status.json" <<'PY' || die "status.json does not list quarantined files"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["counts"]["COMPLETED"] == 2, s["counts"]
for t in s["trials"]:
    q = t.get("quarantined", [])
    assert any(n.startswith("result.h5-") for n in q) and any(n.startswith("seg-1-") for n in q), q
PY
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/d" || die "results changed by rebuilt result files"
echo "sweep_quarantine: faults injected: $faults (SIGTERM, SIGINT, 2 uncommitted checkpoints, 2 damaged segments," \
  "2 unreadable results), all quarantined and reported, data lost: 0"
