#!/usr/bin/env bash
# ctest-labels: slow
# Kill-resume for every mixer and optimizer (docs/reliability.md): for each of the 25 pairs of
# attention, gla, deltanet, deltaproduct, gated_deltaproduct x adamw, muon, soap, mfac, dct_adamw,
# a tiny trial (24 steps, checkpoints every 4) is SIGKILLed once at a random-ish moment (after the
# checkpoint of a random step, a random fraction of an interval later) and rerun with the same
# command. Every metric row (compare_results.py) and the final state — parameters, optimizer state,
# trainer and observer state, from the final checkpoint a completed trial keeps
# (docs/results-format.md; compare_states.py) — must equal an uninterrupted run's bit for bit.
# A crash after the final checkpoint and before result.h5: the rerun resumes at the last step and
# only writes result.h5, equal to the uninterrupted run's.
dir=$work/attention-adamw
rm "$dir/killed/result.h5"
"$EXPT" run "$dir/trial.yaml" --progress quiet --out "$dir/killed" > "$dir/rewrite.out" 2>&1 \
  || die "rerun without result.h5 failed: $(cat "$dir/rewrite.out")"
grep -q "\"event\":\"start\",\"from_step\":$steps" "$dir/killed/attempts.jsonl" \
  || die "the rerun did not resume at the final checkpoint: $(cat "$dir/killed/attempts.jsonl")"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$dir/ref/result.h5" "$dir/killed/result.h5" > /dev/null \
  || die "result.h5 rewritten from the final checkpoint differs"

# Negative control: a resume that drops the optimizer state must fail both comparisons.
# Four pairs run at a time (partly asleep: the killed runs are slowed to 60 ms per step).
# KILL_RESUME_SEED=<n> replays the kill moments of a run (printed below).
source "$(dirname "$0")/lib.sh"

seed=${KILL_RESUME_SEED:-$(date +%s)}
RANDOM=$seed
echo "KILL_RESUME_SEED=$seed"
mixers=(attention gla deltanet deltaproduct gated_deltaproduct)
optimizers=(adamw muon soap mfac dct_adamw)
steps=24

trial() {  # $1 mixer, $2 optimizer -> the trial file's text
  cat <<YAML
seed: 5
task: {type: word_problem, group: S3, seq_len: 8, eval_lengths: [8]}
model: {d_model: 16, n_layers: 1, mixer: {type: $1, heads: 2}, mlp: {intermediate_size: 32}}
optimizer: {type: $2, lr: 3.0e-3}
schedule: {type: cosine, warmup: 3}
train: {steps: $steps, batch_size: 4, eval_every: 6, eval_batches: 1, checkpoint_every: 4}
YAML
}

# $1 folder: SIGKILL the run after the COMMIT of step $2 and $3 ms more (at 60 ms per step, at
# least 12 steps, 0.7 s, remain: the kill lands mid-run even on a loaded machine).
kill_run() {
  local dir=$1 pid
  EXPT_TEST_STEP_DELAY_MS=60 "$EXPT" run "$dir/trial.yaml" --progress quiet --out "$dir/killed" > /dev/null 2>&1 &
  pid=$!
  wait_for_file "$dir/killed/checkpoints/step-$2/COMMIT" 120
  sleep "$(printf '0.%03d' "$3")"
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  [[ ! -e $dir/killed/result.h5 ]] || die "$dir: finished before the kill; the test proves nothing"
}

pair() {  # $1 mixer, $2 optimizer, $3 checkpoint step to kill after, $4 extra ms; exits non-zero on failure
  local dir=$work/$1-$2
  mkdir -p "$dir"
  trial "$1" "$2" > "$dir/trial.yaml"
  "$EXPT" run "$dir/trial.yaml" --progress quiet --out "$dir/ref" > "$dir/ref.out" 2>&1 \
    || die "$1 x $2: uninterrupted run failed: $(cat "$dir/ref.out")"
  kill_run "$dir" "$3" "$4"
  "$EXPT" run "$dir/trial.yaml" --progress quiet --out "$dir/killed" > "$dir/resumed.out" 2>&1 \
    || die "$1 x $2: resumed run failed: $(cat "$dir/resumed.out")"
  [[ $(grep -c '"event":"start"' "$dir/killed/attempts.jsonl") -eq 2 ]] || die "$1 x $2: expected 2 attempts"
  "$EXPT_PYTHON" "$scripts/compare_results.py" "$dir/ref/result.h5" "$dir/killed/result.h5" > "$dir/metrics.txt" \
    || die "$1 x $2 (killed after step $3 + $4 ms): metrics differ: $(cat "$dir/metrics.txt")"
  "$EXPT_PYTHON" "$scripts/compare_states.py" "$dir/ref/checkpoints/step-$steps/state.h5" \
    "$dir/killed/checkpoints/step-$steps/state.h5" > "$dir/state.txt" \
    || die "$1 x $2 (killed after step $3 + $4 ms): final state differs: $(cat "$dir/state.txt")"
  echo "$1 x $2: killed after step $3 + $4 ms; $(cat "$dir/state.txt")"
}

running=()
reap() {  # waits for the oldest running pair
  wait "${running[0]}" || { kill "${running[@]:1}" 2> /dev/null; die "a pair failed (its message is above)"; }
  running=("${running[@]:1}")
}
for m in "${mixers[@]}"; do
  for o in "${optimizers[@]}"; do
    pair "$m" "$o" $((4 * (1 + RANDOM % 3))) $((RANDOM % 100)) &
    running+=($!)
    ((${#running[@]} < 4)) || reap
  done
done
while ((${#running[@]} > 0)); do reap; done

# Negative control: the same kill, resumed without the optimizer state, must differ in both.
dir=$work/control
mkdir -p "$dir"
trial deltanet soap > "$dir/trial.yaml"
"$EXPT" run "$dir/trial.yaml" --progress quiet --out "$dir/ref" > /dev/null 2>&1 || die "control reference failed"
kill_run "$dir" 8 10
EXPT_TEST_DROP_RESUME_STATE=optimizer "$EXPT" run "$dir/trial.yaml" --progress quiet --out "$dir/killed" \
  > /dev/null 2>&1 || die "control resume failed"
if "$EXPT_PYTHON" "$scripts/compare_results.py" "$dir/ref/result.h5" "$dir/killed/result.h5" > /dev/null; then
  die "negative control: metrics compared equal after dropping the optimizer state"
fi
if "$EXPT_PYTHON" "$scripts/compare_states.py" "$dir/ref/checkpoints/step-$steps/state.h5" \
  "$dir/killed/checkpoints/step-$steps/state.h5" > /dev/null; then
  die "negative control: final states compared equal after dropping the optimizer state"
fi
echo "kill_resume_all: 25 pairs killed and resumed bit-identical (metrics and final state); negative control detected"
