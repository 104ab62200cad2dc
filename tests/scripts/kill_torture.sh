#!/usr/bin/env bash
# ctest-labels: slow
# Kill -9 torture (docs/reliability.md): a real sweep under mpirun (a coordinator and 2 groups, 6
# trials checkpointing every 5 steps) is killed with SIGKILL (mpirun and every rank at once) at
# random moments, at least 10 times, and rerun after each kill. The final sweep.h5 and every
# trial's result.h5 must equal an uninterrupted sweep's bit for bit (compare_sweeps.py: no
# duplicated, missing or different step, no lost trial). Negative control: resuming without the
# optimizer state (EXPT_TEST_DROP_RESUME_STATE=optimizer) must make the same comparison fail.
# KILL_TORTURE_SEED=<n> replays the kill times of a run (printed below).
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

seed=${KILL_TORTURE_SEED:-$(date +%s)}
RANDOM=$seed
want_kills=10

# 60 steps a trial: enough kills land in the budget of the test
study=$EXPT_SOURCE_DIR/tests/fixtures/small_grid_study.yaml
steps=(--set base.train.steps=60)

sweep() { mpirun -np 3 "$EXPT" sweep "$study" "${steps[@]}" --out "$@"; }

# Starts a slowed-down sweep on $1 in a new session (mpirun and its ranks share it); prints its pid.
launch_slow() {
  EXPT_TEST_STEP_DELAY_MS=80 setsid mpirun -np 3 "$EXPT" sweep "$study" "${steps[@]}" --out "$1" >> "$1.log" 2>&1 &
  echo $!
}

# Reference: uninterrupted.
sweep "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"

# Torture: rerun and kill until 10 kills have hit a live sweep. Two kills in three come 0-1.5 s
# after the relaunched sweep has started its first trial (mid-training, mid-checkpoint, mid-
# consolidation); every third comes 0.2-2.2 s after launch, whatever the sweep is doing (MPI
# start-up, planning, the first writes). Anchoring on the first start keeps the test meaningful
# when start-up is slow (sanitizers, a loaded machine).
starts() { grep -c '^\[sweep\] start' "$work/killed.log" 2> /dev/null || true; }
kills=0 launches=0
while ((kills < want_kills)); do
  launches=$((launches + 1))
  ((launches <= 3 * want_kills)) || die "only $kills kills landed in $launches launches"
  before=$(starts)
  pid=$(launch_slow "$work/killed")
  if ((launches % 3 == 0)); then
    delay_ms=$((200 + RANDOM % 2000))
    anchor="launch"
  else
    for ((i = 0; i < 1200; i++)); do
      (($(starts) > before)) && break
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.05
    done
    delay_ms=$((RANDOM % 1500))
    anchor="first trial start"
  fi
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -0 "$pid" 2> /dev/null; then
    kill_session "$pid"
    kills=$((kills + 1))
    echo "kill $kills at ${delay_ms} ms after $anchor"
  else
    wait "$pid" || true
    if [[ -e $work/killed/sweep.h5 ]] && "$EXPT_PYTHON" -c "
import json, sys; c = json.load(open(sys.argv[1]))['counts']; sys.exit(0 if c['pending'] + c['running'] == 0 else 1)" \
      "$work/killed/status.json"; then
      die "the sweep finished after only $kills kills; make it slower (seed $seed)"
    fi
  fi
done
sweep "$work/killed" > "$work/final.out" 2>&1 || die "final rerun failed: $(cat "$work/final.out")"

# The kills must have interrupted trials that then resumed from a checkpoint (else nothing was proven).
resumed=$(cat "$work"/killed/trials/*/attempts.jsonl | grep '"event":"start"' | grep -vc '"from_step":0' || true)
((resumed >= 1)) || die "no trial resumed from a checkpoint; the kills proved nothing (seed $seed)"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/killed" \
  || die "killed-and-resumed sweep differs from the uninterrupted one (seed $seed)"
leftover=$(find "$work/killed" -name '*.tmp' | wc -l)

# Negative control: kill after the first committed checkpoint, resume without the optimizer state.
pid=$(launch_slow "$work/dropped")
for ((i = 0; i < 2400; i++)); do
  compgen -G "$work/dropped/trials/*/checkpoints/step-*/COMMIT" > /dev/null && break
  sleep 0.05
done
sleep 0.2
kill_session "$pid"
EXPT_TEST_DROP_RESUME_STATE=optimizer sweep "$work/dropped" > "$work/dropped.out" 2>&1 \
  || die "negative-control rerun failed: $(cat "$work/dropped.out")"
if "$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/dropped" > "$work/control.txt"; then
  die "negative control: a resume without optimizer state compared equal; the comparison cannot fail"
fi
echo "negative control detected: $(cat "$work/control.txt")"
echo "kill_torture: kills survived: $kills (launches $launches, seed $seed), trial resumes from a checkpoint:" \
  "$resumed, leftover .tmp files: $leftover, final sweep bit-identical to the uninterrupted one"
