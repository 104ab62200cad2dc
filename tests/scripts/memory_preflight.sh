#!/usr/bin/env bash
# The memory pre-flight (docs/reliability.md "Memory") through the real tool: `expt validate` and
# `expt plan` print the estimate; `expt run` refuses a trial whose estimate exceeds the memory
# available (fixed by the test-only EXPT_TEST_MEMORY_AVAILABLE) with exit 2, the numbers and the
# fix, writing nothing; --no-memory-check and EXPT_NO_MEMORY_CHECK=1 start it anyway, and its log
# records the estimate and the measured peak; in `expt sweep` (alone and under mpirun) and
# `expt worker` a refused trial FAILS once with the reason, not max_attempts times, and
# --no-memory-check starts it; an allocation failure injected at each named site
# (EXPT_TEST_FAIL_ALLOCATION) ends the run with exit 1 and a message naming what was allocated.
source "$(dirname "$0")/lib.sh"

cat > "$work/tiny.yaml" << 'EOF'
task: {type: word_problem, group: Z5, seq_len: 8}
model: {d_model: 16, n_layers: 1}
train: {steps: 2, batch_size: 4, eval_every: 2, eval_batches: 1}
EOF

# validate: the estimate with its parts, and whether it fits here.
"$EXPT" validate "$work/tiny.yaml" 2> "$work/validate.txt" || die "validate failed: $(cat "$work/validate.txt")"
for field in "valid (trial id" "memory estimate" "per rank" "parameters" "gradients" "optimizer" "activations" \
  "workspace" "fits here"; do
  grep -qF "$field" "$work/validate.txt" || die "validate lacks '$field': $(cat "$work/validate.txt")"
done
EXPT_TEST_MEMORY_AVAILABLE=1000 "$EXPT" validate "$work/tiny.yaml" 2> "$work/validate_small.txt" \
  || die "validate must not fail on memory (it only reports)"
grep -qF "does NOT fit here" "$work/validate_small.txt" || die "no 'does NOT fit': $(cat "$work/validate_small.txt")"

# The estimate grows with the model: d_model 32768 x 8 layers (the issue's case) is reported in GiB
# by validate, without allocating it.
"$EXPT" validate "$work/tiny.yaml" --set model.d_model=32768 --set model.n_layers=8 2> "$work/huge.txt" \
  || die "validate of the huge model failed: $(cat "$work/huge.txt")"
grep -qE "memory estimate [0-9.]+ (GiB|TiB) per rank" "$work/huge.txt" || die "huge model not in GiB: $(cat "$work/huge.txt")"

# plan: a memory column per trial and the peak over trials at once on one host.
cat > "$work/study.yaml" << 'EOF'
study: mem
base:
  task: {type: word_problem, group: Z5, seq_len: 8}
  model: {d_model: 16, n_layers: 1}
  train: {steps: 2, batch_size: 4, eval_every: 2, eval_batches: 1}
search:
  strategy: grid
  seeds: [1]
  optimizers:
    adamw:
      space:
        optimizer.lr: [1.0e-3, 1.0e-2]
EOF
"$EXPT" plan "$work/study.yaml" > "$work/plan.txt" 2>&1 || die "plan failed: $(cat "$work/plan.txt")"
[[ $(grep -c " memory [0-9.]* [KMG]iB" "$work/plan.txt") -eq 2 ]] || die "plan lacks a memory per trial: $(cat "$work/plan.txt")"
grep -qF "peak with k trials at once on one host: k=1" "$work/plan.txt" || die "plan lacks the peak: $(cat "$work/plan.txt")"
grep -qF "k=2" "$work/plan.txt" || die "plan lacks the peak of 2 trials: $(cat "$work/plan.txt")"

# Refusal: exit 2, the numbers, the largest parts and what to change; nothing written.
rc=0
EXPT_TEST_MEMORY_AVAILABLE=1000000 "$EXPT" run "$work/tiny.yaml" --out "$work/refused" > /dev/null \
  2> "$work/refused.txt" || rc=$?
[[ $rc -eq 2 ]] || die "a trial over the available memory: expected exit 2, got $rc: $(cat "$work/refused.txt")"
for field in "refusing to start" "976.6 KiB is available (EXPT_TEST_MEMORY_AVAILABLE)" "per rank" "runtime" \
  "to fit, cut it by" "--no-memory-check"; do
  grep -qF -- "$field" "$work/refused.txt" || die "refusal lacks '$field': $(cat "$work/refused.txt")"
done
[[ ! -e $work/refused ]] || die "a refused trial wrote $(ls "$work/refused")"

# Override: the flag, and the environment variable (for sweeps and workers).
EXPT_TEST_MEMORY_AVAILABLE=1000000 "$EXPT" run "$work/tiny.yaml" --out "$work/forced" --no-memory-check \
  > /dev/null 2> "$work/forced.txt" || die "--no-memory-check did not run: $(cat "$work/forced.txt")"
EXPT_TEST_MEMORY_AVAILABLE=1000000 EXPT_NO_MEMORY_CHECK=1 "$EXPT" run "$work/tiny.yaml" --out "$work/forced_env" \
  > /dev/null 2> "$work/forced_env.txt" || die "EXPT_NO_MEMORY_CHECK=1 did not run: $(cat "$work/forced_env.txt")"
grep -qF "memory estimate" "$work/forced/log.txt" || die "the run log lacks the estimate: $(cat "$work/forced/log.txt")"
grep -qE "peak RSS of this process [0-9.]+ MiB against the memory estimate" "$work/forced/log.txt" \
  || die "the run log lacks the measured peak: $(cat "$work/forced/log.txt")"

# Sweeps and workers: a trial the pre-flight refuses FAILS once, with the reason, whatever
# sweep.max_attempts (a refusal is not transient: another attempt on this host meets it again; a
# worker does not take it again either), and the command exits 1; --no-memory-check starts them.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cat > "$work/study.yaml" << 'EOF'
study: refused
base:
  task: {type: word_problem, group: Z5, seq_len: 8, eval_lengths: [8]}
  model: {d_model: 16, n_layers: 1}
  train: {steps: 2, batch_size: 4, eval_every: 2, eval_batches: 1}
search:
  strategy: grid
  seeds: [1]
  space: {optimizer.lr: [1.0e-3, 3.0e-3]}
sweep: {ranks_per_trial: 1, max_attempts: 3}
EOF
# $1: name; the rest: the command (without --out).
refused_once() {
  local name=$1 rc=0 refusals
  shift
  EXPT_TEST_MEMORY_AVAILABLE=1000000 timeout 120 "$@" --out "$work/$name" > "$work/$name.out" 2>&1 || rc=$?
  ((rc != 124)) || die "$name: still running after 120 s (retrying the refused trials?): $(tail -5 "$work/$name.out")"
  ((rc == 1)) || die "$name: expected exit 1, got $rc: $(cat "$work/$name.out")"
  refusals=$(grep -c "FAILED (.*): refusing to start: this trial needs about" "$work/$name.out" || true)
  ((refusals == 2)) || die "$name: $refusals refusals for 2 trials (max_attempts 3): $(cat "$work/$name.out")"
  "$EXPT_PYTHON" - "$work/$name/status.json" << 'PY' || die "$name: status.json: $(cat "$work/$name/status.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["counts"]["FAILED"] == 2, s["counts"]
assert all(t["state"] == "FAILED" and t["message"].startswith("refusing to start") for t in s["trials"]), s["trials"]
PY
  [[ -z $(ls "$work/$name"/trials/*/result.h5 2> /dev/null) ]] || die "$name: a refused trial wrote a result"
}
refused_once sweep_refused "$EXPT" sweep "$work/study.yaml"
refused_once worker_refused "$EXPT" worker "$work/study.yaml"
refused_once mpi_refused mpirun -np 2 "$EXPT" sweep "$work/study.yaml"
for command in sweep worker; do
  EXPT_TEST_MEMORY_AVAILABLE=1000000 "$EXPT" $command "$work/study.yaml" --no-memory-check --out "$work/${command}_forced" \
    > "$work/${command}_forced.out" 2>&1 || die "$command --no-memory-check failed: $(cat "$work/${command}_forced.out")"
  grep -q "2 trial(s): 2 COMPLETED$" "$work/${command}_forced.out" || die "$command --no-memory-check: $(cat "$work/${command}_forced.out")"
done

# An injected allocation failure at each named site: exit 1, what was allocated and its size.
declare -A expected=(
  [parameters]="out of memory allocating the parameter values and gradients, 2 x 13520 values (105.6 KiB)"
  [optimizer]="out of memory allocating the adamw optimizer's state and scratch ("
  [activations]="out of memory allocating the activations of a forward at batch 4 x length 8"
  [workspace]="out of memory allocating the backward workspace, "
)
for site in "${!expected[@]}"; do
  rc=0
  EXPT_TEST_FAIL_ALLOCATION=$site "$EXPT" run "$work/tiny.yaml" --out "$work/fail_$site" > /dev/null \
    2> "$work/fail_$site.txt" || rc=$?
  [[ $rc -eq 1 ]] || die "$site: expected exit 1, got $rc: $(cat "$work/fail_$site.txt")"
  grep -qF -- "${expected[$site]}" "$work/fail_$site.txt" || die "$site: not '${expected[$site]}': $(cat "$work/fail_$site.txt")"
  grep -qF "bad_alloc" "$work/fail_$site.txt" && die "$site: a bare std::bad_alloc: $(cat "$work/fail_$site.txt")"
done
echo "memory pre-flight: validate, plan, refusal, overrides and ${#expected[@]} allocation sites OK"
