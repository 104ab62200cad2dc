#!/usr/bin/env bash
# `expt slurm submit` on a one-node Slurm cluster (tests/scripts/lib_slurm.sh): the sweep run as a job
# array of 3 `expt worker`s is bit-identical (every metric row, every summary, the trial set:
# compare_sweeps.py) to a one-process `expt sweep`
#   1. undisturbed;
#   2. with array task 0 cancelled (scancel) mid-trial and requeued (scontrol requeue), and task 1's
#      worker killed with SIGKILL mid-trial (its lease expires, another worker resumes the trial);
# and 3. 2-rank trials (--ranks-per-trial 2: `srun --mpi=pmix --ntasks=2 expt worker`) equal an
# `mpirun -np 3 expt sweep` of the same study.
# ctest-labels: slow slurm
source "$(dirname "$0")/lib.sh"
source "$scripts/lib_slurm.sh"
slurm_cluster_start
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# sbatch passes the environment on to the jobs: a killed worker's lease expires after 4 s.
export EXPT_LEASE_TTL_S=4

study="$EXPT_SOURCE_DIR/configs/sweep_small.yaml"
short=(--set base.train.steps=20 --set base.train.eval_every=10 --set base.train.checkpoint_every=5)

# Submits a job array with `expt slurm submit`; prints the job id.
submit() {
  local out=$1
  shift
  "$EXPT" slurm submit "$study" "${short[@]}" --out "$out" "$@" > "$out.submit" 2>&1 ||
    die "expt slurm submit failed: $(cat "$out.submit")"
  sed -n 's/^expt: submitted job \([0-9]*\) .*/\1/p' "$out.submit"
}

# "TASK STATE EXIT" for every array task of job $1 (Slurm keeps finished jobs for MinJobAge=300 s).
task_states() {
  scontrol -o show job "$1" | sed -n 's/.*ArrayTaskId=\([0-9]*\) .*JobState=\([A-Z_]*\) .*ExitCode=\([0-9:]*\) .*/\1 \2 \3/p' | sort -n
}

# The log of array task $2 of job $1 in sweep directory $3.
task_log() { echo "$3/slurm/worker-$1_$2.out"; }

# Waits (up to 60 s) until $1 holds the line pattern $2.
wait_for_line() {
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q -- "$2" "$1" 2> /dev/null && return 0
    sleep 0.1
  done
  die "no '$2' in $1 after 60 s: $(cat "$1" 2> /dev/null)"
}

t0=$SECONDS
"$EXPT" sweep "$study" "${short[@]}" --out "$work/ref" > "$work/ref.out" 2>&1 || die "1-process sweep failed: $(cat "$work/ref.out")"

# 1. Three workers, undisturbed.
job=$(submit "$work/plain" --workers 3)
[[ -n $job ]] || die "no job id: $(cat "$work/plain.submit")"
grep -q '^#SBATCH --array=0-2$' "$work/plain/slurm/job-1.sbatch" || die "script: $(cat "$work/plain/slurm/job-1.sbatch")"
slurm_wait_job "$job" 120
[[ $(task_states "$job") == $'0 COMPLETED 0:0\n1 COMPLETED 0:0\n2 COMPLETED 0:0' ]] || die "job $job: $(task_states "$job")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/plain" || die "the job array's sweep differs from the 1-process sweep"
for task in 0 1 2; do
  grep -q "^\[worker\] start" "$(task_log "$job" $task "$work/plain")" || die "worker $task trained nothing"
done
echo "plain job array: $((SECONDS - t0)) s"

# 2. Slow steps (100 ms) so that the faults land mid-trial; --requeue makes the tasks requeueable.
t1=$SECONDS
job=$(EXPT_TEST_STEP_DELAY_MS=100 submit "$work/faults" --workers 3 --requeue)
log0=$(task_log "$job" 0 "$work/faults") log1=$(task_log "$job" 1 "$work/faults")
wait_for_line "$log0" "^\[worker\] start"
wait_for_line "$log1" "^\[worker\] start"
sleep 1 # 10 steps into the trials: past their first checkpoint (step 5)
# Task 1's worker: the expt process among the task's processes.
task1_id=$(squeue --noheader --jobs="${job}_1" --format=%A)
worker_pid=""
for pid in $(scontrol listpids "$task1_id" | awk 'NR > 1 {print $1}'); do
  [[ $(cat "/proc/$pid/comm" 2> /dev/null) == expt ]] && worker_pid=$pid
done
[[ -n $worker_pid ]] || die "no expt process in task 1 ($(scontrol listpids "$task1_id"))"
kill -KILL "$worker_pid"
# The trial it was training: the last one it started.
killed_trial=$(sed -n 's/^\[worker\] start \([0-9a-f]*\) .*/\1/p' "$log1" | tail -n 1)
scancel "${job}_0"
for ((i = 0; i < 300; i++)); do
  [[ $(task_states "$job" | awk '$1 == 0 {print $2}') == CANCELLED ]] && break
  sleep 0.1
done
[[ $(task_states "$job" | awk '$1 == 0 {print $2}') == CANCELLED ]] || die "task 0 not cancelled: $(task_states "$job")"
grep -q "stopped by SIGTERM" "$log0" || die "task 0's worker did not stop on SIGTERM: $(cat "$log0")"
scontrol requeue "${job}_0"
slurm_release_requeued "${job}_0" # not at once: decision 141
slurm_wait_job "$job" 180
states=$(task_states "$job")
[[ $states == $'0 COMPLETED 0:0\n1 FAILED 137:0\n2 COMPLETED 0:0' ]] || die "job $job: $states"
grep -q "restart 1 " "$log0" || die "task 0 did not run again: $(cat "$log0")"
# The killed worker's trial was taken over and finished by another worker.
[[ -n $killed_trial ]] || die "task 1 started no trial: $(cat "$log1")"
grep -q "^\[worker\] start $killed_trial" "$log0" "$(task_log "$job" 2 "$work/faults")" ||
  die "nobody resumed $killed_trial after the SIGKILL"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/faults" || die "the disturbed job array's sweep differs from the 1-process sweep"
echo "cancelled + requeued + SIGKILLed job array: $((SECONDS - t1)) s"

# 3. 2-rank trials: one worker of 2 ranks under srun --mpi=pmix.
t2=$SECONDS
two=(--set 'search.seeds=[1]')
mpirun -np 3 "$EXPT" sweep "$study" "${short[@]}" "${two[@]}" --set sweep.ranks_per_trial=2 --out "$work/ref2" > "$work/ref2.out" 2>&1 ||
  die "mpirun 2-rank sweep failed: $(cat "$work/ref2.out")"
job=$(submit "$work/ranks2" "${two[@]}" --workers 1 --ranks-per-trial 2)
grep -q "^  srun --mpi=pmix --ntasks=2 " "$work/ranks2/slurm/job-1.sbatch" || die "script: $(cat "$work/ranks2/slurm/job-1.sbatch")"
slurm_wait_job "$job" 120
[[ $(task_states "$job") == "0 COMPLETED 0:0" ]] || die "job $job: $(task_states "$job")"
grep -q "2 rank(s)" "$(task_log "$job" 0 "$work/ranks2")" || die "not a 2-rank worker: $(cat "$(task_log "$job" 0 "$work/ranks2")")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref2" "$work/ranks2" || die "the 2-rank workers' sweep differs from the mpirun sweep"
echo "2-rank worker: $((SECONDS - t2)) s"
echo "PASS: job arrays of expt workers (undisturbed, cancelled + requeued + SIGKILLed, 2 ranks) = the reference sweeps; $SECONDS s"
