#!/usr/bin/env bash
# `expt slurm submit` without a cluster (docs/cli.md "expt slurm submit"; the job array itself runs
# on a one-node cluster in slurm_workers.sh, which needs root): every option reaches the script;
# --dry-run writes DIR/slurm/job-K.sbatch and prints it but never calls sbatch; without it, sbatch
# (a stand-in first on PATH that records its arguments) is called once with the script, its job id
# is printed, and the next submission writes job-2; an sbatch that fails gives exit 1 and keeps the
# script; a bad --time or a bad study gives exit 2 and writes nothing. The script's time-limit handling,
# run by bash with a stand-in worker and scontrol: SIGUSR1 during the worker's run becomes its
# SIGTERM, and one before the worker starts keeps it from starting (decision 142); both requeue.
source "$(dirname "$0")/lib.sh"

study=$EXPT_SOURCE_DIR/configs/sweep_small.yaml
mkdir -p "$work/bin"
cat > "$work/bin/sbatch" << EOF
#!/bin/bash
echo "\$*" >> "$work/sbatch.calls"
[[ \${FAKE_SBATCH_FAIL:-0} == 1 ]] && { echo "sbatch: error: Batch job submission failed" >&2; exit 1; }
echo 4242
EOF
chmod +x "$work/bin/sbatch"
export PATH="$work/bin:$PATH"
out=$work/sweep

# --dry-run, every option.
"$EXPT" slurm submit "$study" --out "$out" --workers 3 --ranks-per-trial 2 --time 1:30:00 --partition short \
  --requeue --no-memory-check --set base.train.steps=20 --dry-run > "$work/dry.out" 2>&1 ||
  die "--dry-run failed: $(cat "$work/dry.out")"
script=$out/slurm/job-1.sbatch
[[ -s $script ]] || die "no $script: $(cat "$work/dry.out")"
[[ ! -e $work/sbatch.calls ]] || die "--dry-run called sbatch: $(cat "$work/sbatch.calls")"
grep -qF "expt: not submitted (--dry-run); submit it with \`sbatch $script\`" "$work/dry.out" ||
  die "no --dry-run note: $(cat "$work/dry.out")"
# What was printed is the script written.
cmp <(head -n "$(wc -l < "$script")" "$work/dry.out") "$script" || die "the printed script is not the one written"
for line in '#SBATCH --array=0-2' '#SBATCH --ntasks=2' '#SBATCH --time=01:30:00' '#SBATCH --partition=short' \
  '#SBATCH --signal=B:USR1@300' '#SBATCH --requeue' "#SBATCH --output=$out/slurm/worker-%A_%a.out"; do
  grep -qxF -- "$line" "$script" || die "no '$line' in the script: $(cat "$script")"
done
expt_path=$(readlink -f "$EXPT")
grep -qxF "  srun --mpi=pmix --ntasks=2 $expt_path worker $study --out $out --set base.train.steps=20 --set sweep.ranks_per_trial=2 --no-memory-check &" "$script" ||
  die "worker line: $(grep ' &$' "$script")"
bash -n "$script" || die "the script does not parse"

# Submitted: sbatch once, with the script; the job id printed; the next one is job-2.
"$EXPT" slurm submit "$study" --out "$out" --workers 2 > "$work/submit.out" 2>&1 || die "submit failed: $(cat "$work/submit.out")"
[[ $(cat "$work/sbatch.calls") == "--parsable $out/slurm/job-2.sbatch" ]] || die "sbatch called as: $(cat "$work/sbatch.calls")"
grep -qF "expt: submitted job 4242 (2 worker(s)); \`expt status $out\` shows the sweep" "$work/submit.out" ||
  die "no job id: $(cat "$work/submit.out")"
grep -qxF '#SBATCH --array=0-1' "$out/slurm/job-2.sbatch" || die "job-2: $(cat "$out/slurm/job-2.sbatch")"
grep -q -- "--no-memory-check" "$out/slurm/job-2.sbatch" && die "job-2 got --no-memory-check unasked"

# sbatch fails: exit 1, the script kept.
rc=0
FAKE_SBATCH_FAIL=1 "$EXPT" slurm submit "$study" --out "$out" --workers 1 > "$work/fail.out" 2>&1 || rc=$?
((rc == 1)) || die "a failing sbatch gave exit $rc: $(cat "$work/fail.out")"
grep -qF "expt: sbatch $out/slurm/job-3.sbatch failed; the script is kept" "$work/fail.out" || die "$(cat "$work/fail.out")"
[[ -s $out/slurm/job-3.sbatch ]] || die "the script of the failed submission is gone"

# Bad input: exit 2, nothing written.
rc=0
"$EXPT" slurm submit "$study" --out "$work/bad" --workers 1 --time 1:60:00 > "$work/badtime.out" 2>&1 || rc=$?
((rc == 2)) || die "--time 1:60:00 gave exit $rc: $(cat "$work/badtime.out")"
grep -qF "expt: --time 1:60:00: expected HH:MM:SS" "$work/badtime.out" || die "$(cat "$work/badtime.out")"
rc=0
"$EXPT" slurm submit "$study" --out "$work/bad" --workers 1 --set search.strategy=nope > "$work/badstudy.out" 2>&1 || rc=$?
((rc == 2)) || die "a bad study gave exit $rc: $(cat "$work/badstudy.out")"
grep -q "search.strategy" "$work/badstudy.out" || die "the study error is not named: $(cat "$work/badstudy.out")"
[[ ! -e $work/bad ]] || die "a refused submission wrote $(find "$work/bad")"
(($(wc -l < "$work/sbatch.calls") == 2)) || die "sbatch calls: $(cat "$work/sbatch.calls")"
# The time-limit warning, without Slurm: the script run by bash, its worker line replaced by a
# stand-in that logs its start and its SIGTERM, scontrol a stand-in that logs its arguments.
"$EXPT" slurm submit "$study" --out "$work/signal" --workers 1 --requeue --dry-run > /dev/null 2>&1 || die "--dry-run failed"
cat > "$work/bin/scontrol" << EOF
#!/bin/bash
echo "\$*" >> "$work/scontrol.calls"
EOF
cat > "$work/bin/fake-worker" << EOF
#!/bin/bash
trap 'echo TERM >> "$work/worker.events"; exit 143' TERM
echo start >> "$work/worker.events"
for ((i = 0; i < 100; i++)); do sleep 0.1; done
echo end >> "$work/worker.events"
EOF
chmod +x "$work/bin/scontrol" "$work/bin/fake-worker"
grep -c ' worker .* &$' "$work/signal/slurm/job-1.sbatch" | grep -qx 1 || die "no worker line: $(cat "$work/signal/slurm/job-1.sbatch")"
sed 's|^\( *\).* worker .* &$|\1fake-worker \&|' "$work/signal/slurm/job-1.sbatch" > "$work/during.sh"
# A warning before the worker starts: SIGUSR1 to the shell just before its start.
sed 's|^if ((!time_limit)); then$|kill -USR1 $$\n&|' "$work/during.sh" > "$work/before.sh"
grep -q '^kill -USR1' "$work/before.sh" || die "no start check in the script: $(cat "$work/during.sh")"
export SLURM_JOB_ID=7 SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=0
rc=0
bash "$work/before.sh" > "$work/before.log" 2>&1 || rc=$?
[[ $rc == 143 && ! -e $work/worker.events ]] || die "warning before the start: exit $rc, worker: $(cat "$work/worker.events" 2> /dev/null)"
grep -q "^expt slurm: SIGUSR1 at .*: the time limit is near$" "$work/before.log" || die "$(cat "$work/before.log")"
[[ $(cat "$work/scontrol.calls") == "requeue 7_0" ]] || die "scontrol: $(cat "$work/scontrol.calls" 2> /dev/null)"
rm "$work/scontrol.calls"
# A warning while the worker runs.
bash "$work/during.sh" > "$work/during.log" 2>&1 &
shell=$!
wait_for_file "$work/worker.events" 30
kill -USR1 "$shell"
rc=0
wait "$shell" || rc=$?
[[ $rc == 143 && $(cat "$work/worker.events") == $'start\nTERM' ]] || die "warning during the run: exit $rc, worker: $(cat "$work/worker.events")"
[[ $(cat "$work/scontrol.calls") == "requeue 7_0" ]] || die "scontrol: $(cat "$work/scontrol.calls" 2> /dev/null)"
unset SLURM_JOB_ID SLURM_ARRAY_JOB_ID SLURM_ARRAY_TASK_ID
echo "slurm_submit_dry_run: ok"
