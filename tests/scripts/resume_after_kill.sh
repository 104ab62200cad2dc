#!/usr/bin/env bash
# Resume promise: a run killed with SIGKILL after a checkpoint and rerun with the same command ends
# with metrics bit-identical to an uninterrupted run; a negative control that drops the optimizer
# state on resume must make the same comparison fail.
source "$(dirname "$0")/lib.sh"

cat > "$work/trial.yaml" <<'YAML'
seed: 7
task: {type: word_problem, group: S3, seq_len: 12, eval_lengths: [12, 24]}
model: {d_model: 32, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 64}}
optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.1}
schedule: {type: cosine, warmup: 5}
train: {steps: 60, batch_size: 8, eval_every: 10, eval_batches: 2, checkpoint_every: 10}
YAML

run() { "$EXPT" run "$work/trial.yaml" --progress plain --out "$@"; }

# Reference: uninterrupted.
run "$work/ref" > "$work/ref.out" 2>&1 || die "reference run failed: $(cat "$work/ref.out")"

# Killed twice with SIGKILL at different checkpoints, then finished.
kill_after_commit() {  # $1 out dir, $2 step whose COMMIT to wait for
  EXPT_TEST_STEP_DELAY_MS=40 "$EXPT" run "$work/trial.yaml" --progress quiet --out "$1" > /dev/null 2>&1 &
  local pid=$!
  wait_for_file "$1/checkpoints/step-$2/COMMIT" 120
  sleep 0.15  # land in the middle of the next interval
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  [[ ! -e $1/result.h5 ]] || die "the run finished before it was killed; the test proves nothing"
}
kill_after_commit "$work/killed" 20
kill_after_commit "$work/killed" 40
run "$work/killed" > "$work/killed.out" 2>&1 || die "resumed run failed: $(cat "$work/killed.out")"
grep -q '"event":"start"' "$work/killed/attempts.jsonl" || die "attempts.jsonl has no start events"
[[ $(grep -c '"event":"start"' "$work/killed/attempts.jsonl") -eq 3 ]] || die "expected 3 attempts"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/ref/result.h5" "$work/killed/result.h5" \
  || die "resumed run differs from the uninterrupted run"

# A finished trial is not rerun.
run "$work/killed" > "$work/again.out" 2>&1 || die "rerun of a finished trial failed"
grep -q "already finished" "$work/again.out" || die "a finished trial was run again"
[[ $(grep -c '"event":"start"' "$work/killed/attempts.jsonl") -eq 3 ]] || die "a finished trial started again"

# Negative control: resuming without the optimizer state must be detected as different.
kill_after_commit "$work/dropped" 20
EXPT_TEST_DROP_RESUME_STATE=optimizer run "$work/dropped" > "$work/dropped.out" 2>&1 || die "control run failed"
if "$EXPT_PYTHON" "$scripts/compare_results.py" "$work/ref/result.h5" "$work/dropped/result.h5"; then
  die "negative control: a resume that drops optimizer state compared equal; the comparison cannot fail"
fi
echo "resume_after_kill: 2 kills survived, metrics identical; negative control detected"
