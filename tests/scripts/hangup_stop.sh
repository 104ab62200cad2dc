#!/usr/bin/env bash
# A hang-up (SIGHUP: the terminal was closed) stops a run like SIGTERM does (docs/reliability.md):
# checkpoint at the next step boundary, a message naming the signal and the step, exit code 129,
# and the rerun resumes bit-identically to an uninterrupted run.
# 1. `expt run` alone; and a run whose SIGHUP is ignored (`nohup`) is not stopped by one.
# 2. `expt sweep` alone.
# 3. `expt sweep` under mpirun, SIGHUP to mpirun: Open MPI 4.1 forwards it to the ranks as SIGTERM
#    (the ranks cannot know what the user sent), so the message says so.
# 4. `expt sweep` under mpirun, SIGHUP to every rank (a hang-up that reaches the ranks themselves,
#    as with a launcher that keeps them in the terminal's process group): named as SIGHUP.
# 5. Ctrl-C (SIGINT) to `mpirun expt run`: forwarded as SIGTERM, and the message says so.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/trial.yaml" <<'YAML'
seed: 3
task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.1}
schedule: {type: cosine, warmup: 5}
train: {steps: 40, batch_size: 8, eval_every: 10, eval_batches: 1, checkpoint_every: 5}
YAML
cat > "$work/study.yaml" <<'YAML'
study: hangup
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
resume="checkpoint written, rerun the same command to resume"

# Waits for job $1 and sets rc to its exit code.
wait_rc() {
  set +e
  wait "$1"
  rc=$?
  set -e
}

# The stop line of trial directory $1 for signal description $2: checks the checkpoint of its stop
# step is committed and that the trial did not finish.
check_stopped_trial() {
  local t=$1 what=$2 step
  step=$(grep -F "stopped by $what at step " "$t/log.txt" | sed -n 's/.* at step \([0-9]*\); .*/\1/p')
  [[ -n $step ]] || die "$t/log.txt: no line 'stopped by $what at step N': $(tail -3 "$t/log.txt")"
  grep -qF "stopped by $what at step $step; $resume" "$t/log.txt" || die "$t/log.txt: wrong stop line"
  [[ -e $t/checkpoints/step-$step/COMMIT ]] || die "$t: no committed checkpoint at the stop step $step"
  [[ ! -e $t/result.h5 ]] || die "$t: finished before the signal; the test proves nothing"
}

# Waits until $1 trial directories of sweep $2 have committed the checkpoint of step 10.
wait_for_commits() {
  local n=$1 dir=$2 i
  for ((i = 0; i < 2400; i++)); do
    [[ $(compgen -G "$dir/trials/*/checkpoints/step-10/COMMIT" | wc -l) -ge $n ]] && return 0
    sleep 0.05
  done
  die "timed out waiting for step-10 checkpoints in $dir"
}

# ---- 1. expt run ----
"$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/run-ref" > "$work/run-ref.out" 2>&1 \
  || die "reference run failed: $(cat "$work/run-ref.out")"
EXPT_TEST_STEP_DELAY_MS=60 "$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/run" > "$work/run.out" 2>&1 &
pid=$!
wait_for_file "$work/run/checkpoints/step-10/COMMIT" 120
kill -HUP "$pid"
wait_rc "$pid"
[[ $rc -eq 129 ]] || die "expt run stopped by SIGHUP: expected exit code 129, got $rc: $(cat "$work/run.out")"
grep -qE "^expt: stopped by SIGHUP \(hang-up\) at step [0-9]+; $resume\$" "$work/run.out" \
  || die "expt run: no stop message: $(cat "$work/run.out")"
check_stopped_trial "$work/run" "SIGHUP (hang-up)"
"$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/run" > "$work/run2.out" 2>&1 \
  || die "resumed run failed: $(cat "$work/run2.out")"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/run-ref/result.h5" "$work/run/result.h5" \
  || die "expt run resumed after SIGHUP differs from the uninterrupted run"

# A run started with SIGHUP ignored (nohup) keeps it ignored and finishes.
(
  trap '' HUP
  EXPT_TEST_STEP_DELAY_MS=30 exec "$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/nohup"
) > "$work/nohup.out" 2>&1 &
pid=$!
wait_for_file "$work/nohup/checkpoints/step-10/COMMIT" 120
kill -HUP "$pid"
wait_rc "$pid"
[[ $rc -eq 0 ]] || die "a run with SIGHUP ignored was stopped by one (exit code $rc): $(cat "$work/nohup.out")"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/run-ref/result.h5" "$work/nohup/result.h5" \
  || die "the nohup run differs from the reference"

# ---- 2. one-process sweep ----
"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"
EXPT_TEST_STEP_DELAY_MS=60 "$EXPT" sweep "$study" --out "$work/alone" > "$work/alone.out" 2>&1 &
pid=$!
wait_for_commits 1 "$work/alone"
kill -HUP "$pid"
wait_rc "$pid"
[[ $rc -eq 129 ]] || die "one-process sweep stopped by SIGHUP: expected exit code 129, got $rc: $(cat "$work/alone.out")"
grep -qF "expt: sweep stopped by SIGHUP (hang-up); the running trials wrote a checkpoint, rerun the same command to resume" \
  "$work/alone.out" || die "one-process sweep: no stop message: $(cat "$work/alone.out")"
grep -qE "stopped by SIGHUP \(hang-up\) at step [0-9]+ .*: checkpoint written" "$work/alone.out" \
  || die "one-process sweep: the trial line does not name the signal: $(cat "$work/alone.out")"
stopped=$(grep -lF "stopped by SIGHUP (hang-up) at step" "$work"/alone/trials/*/log.txt | wc -l)
[[ $stopped -eq 1 ]] || die "one-process sweep: expected 1 stopped trial, found $stopped"
check_stopped_trial "$(dirname "$(grep -lF "stopped by SIGHUP" "$work"/alone/trials/*/log.txt)")" "SIGHUP (hang-up)"
"$EXPT" sweep "$study" --out "$work/alone" > "$work/alone2.out" 2>&1 || die "resumed sweep failed: $(cat "$work/alone2.out")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/alone" || die "one-process sweep resumed after SIGHUP differs"

# ---- 3. under mpirun, SIGHUP to mpirun ----
# Sweep $work/$1 under mpirun was stopped by signal description $2: the stop message, a checkpoint
# at the stop step of both running trials, and a rerun under mpirun equal to the reference.
check_stopped_mpi_sweep() {
  local name=$1 what=$2 t
  grep -qF "expt: sweep stopped by $what; the running trials wrote a checkpoint" "$work/$name.out" \
    || die "$name: no stop message: $(cat "$work/$name.out")"
  for t in "$work/$name"/trials/*; do check_stopped_trial "$t" "$what"; done
  mpirun -np 3 "$EXPT" sweep "$study" --out "$work/$name" > "$work/$name-2.out" 2>&1 \
    || die "$name: resumed mpirun sweep failed: $(cat "$work/$name-2.out")"
  "$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/$name" || die "$name: the resumed sweep differs"
}
mpi_forwarded="SIGTERM (mpirun forwards Ctrl-C and hang-up as SIGTERM)"
EXPT_TEST_STEP_DELAY_MS=60 mpirun -np 3 "$EXPT" sweep "$study" --out "$work/mpi" > "$work/mpi.out" 2>&1 &
pid=$!
wait_for_commits 2 "$work/mpi"
kill -HUP "$pid"
wait_rc "$pid"
[[ $rc -ne 0 ]] || die "a sweep under mpirun stopped by SIGHUP exited 0"
mpirun_rc=$rc
check_stopped_mpi_sweep mpi "$mpi_forwarded"

# ---- 4. under mpirun, SIGHUP to every rank ----
EXPT_TEST_STEP_DELAY_MS=60 mpirun -np 3 "$EXPT" sweep "$study" --out "$work/ranks" > "$work/ranks.out" 2>&1 &
pid=$!
wait_for_commits 2 "$work/ranks"
ranks=$(pgrep -P "$pid" -x expt || true)
[[ $(echo "$ranks" | wc -w) -eq 3 ]] || die "expected 3 expt processes under mpirun, found: $ranks"
kill -HUP $ranks
wait_rc "$pid"
[[ $rc -ne 0 ]] || die "a sweep whose ranks got SIGHUP exited 0"
check_stopped_mpi_sweep ranks "SIGHUP (hang-up)"

# ---- 5. Ctrl-C to `mpirun expt run`: the rank sees SIGTERM, and the message says why ----
EXPT_TEST_STEP_DELAY_MS=60 mpirun -np 1 "$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/mpi-run" \
  > "$work/mpi-run.out" 2>&1 &
pid=$!
wait_for_file "$work/mpi-run/checkpoints/step-10/COMMIT" 120
kill -INT "$pid"
wait_rc "$pid"
[[ $rc -ne 0 ]] || die "mpirun expt run stopped by SIGINT exited 0"
grep -qE "^expt: stopped by SIGTERM \(mpirun forwards Ctrl-C and hang-up as SIGTERM\) at step [0-9]+; $resume\$" \
  "$work/mpi-run.out" || die "mpirun expt run + SIGINT: no stop message: $(cat "$work/mpi-run.out")"
check_stopped_trial "$work/mpi-run" "$mpi_forwarded"
mpirun -np 1 "$EXPT" run "$work/trial.yaml" --progress quiet --out "$work/mpi-run" > "$work/mpi-run2.out" 2>&1 \
  || die "resumed mpirun run failed: $(cat "$work/mpi-run2.out")"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/run-ref/result.h5" "$work/mpi-run/result.h5" \
  || die "mpirun expt run resumed after Ctrl-C differs from the uninterrupted run"

echo "hangup_stop: SIGHUP stopped expt run (129), a one-process sweep (129), an mpirun sweep (as SIGTERM, mpirun exit code $mpirun_rc)" \
  "and its ranks, Ctrl-C to mpirun expt run; each checkpointed and resumed bit-identically; an ignored SIGHUP (nohup) did not stop a run"
