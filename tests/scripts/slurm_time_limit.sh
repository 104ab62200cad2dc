#!/usr/bin/env bash
# The Slurm time limit end to end, on the one-node cluster (tests/scripts/lib_slurm.sh): a 1-task
# `expt slurm submit --time 00:01:00 --requeue` job whose sweep needs longer than Slurm lets a run
# last before its warning. Nothing here signals the job: slurmctld sends the time limit's warning
# itself (#SBATCH --signal=B:USR1@30, to the batch shell), the shell turns it into the worker's
# SIGTERM, the worker checkpoints at its next step boundary, releases its lease and exits 143, the
# task requeues itself (scontrol requeue) and its next run resumes the trial. Checked: slurmctld
# sent the signal (its log), the shell got it, the worker stopped on it with a checkpoint and
# released its lease (EXPT_TEST_CLAIM_LOG), the task was requeued and ran again, the same trial was
# claimed again and resumed, the job ends COMPLETED 0:0 (not FAILED, not TIMEOUT), and the sweep
# directory is bit-identical to a one-process `expt sweep` (compare_sweeps.py).
# ctest-labels: slow slurm
source "$(dirname "$0")/lib.sh"
source "$scripts/lib_slurm.sh"
# slurmctld logs the signals it sends (`job_signal: 10 of running JobId=...`) from level verbose on.
export SLURM_TEST_DEBUG=${SLURM_TEST_DEBUG:-verbose}
slurm_cluster_start

study="$EXPT_SOURCE_DIR/configs/sweep_small.yaml"
# 6 trials of 40 steps; at 150 ms a step (EXPT_TEST_STEP_DELAY_MS) the worker needs over 36 s,
# longer than the first warning can take to come (Slurm sends it up to a tick early: within about
# 30 s of the start for a 1-minute limit).
short=(--set 'search.seeds=[1]' --set base.train.steps=40 --set base.train.eval_every=20
  --set base.train.checkpoint_every=10)

"$EXPT" sweep "$study" "${short[@]}" --out "$work/ref" > "$work/ref.out" 2>&1 || die "1-process sweep failed: $(cat "$work/ref.out")"

export EXPT_TEST_CLAIM_LOG="$work/claims.jsonl" EXPT_TEST_STEP_DELAY_MS=150
"$EXPT" slurm submit "$study" "${short[@]}" --out "$work/sweep" --workers 1 --time 00:01:00 --requeue > "$work/submit.out" 2>&1 ||
  die "expt slurm submit failed: $(cat "$work/submit.out")"
unset EXPT_TEST_CLAIM_LOG EXPT_TEST_STEP_DELAY_MS
job=$(sed -n 's/^expt: submitted job \([0-9]*\) .*/\1/p' "$work/submit.out")
[[ -n $job ]] || die "no job id: $(cat "$work/submit.out")"
script="$work/sweep/slurm/job-1.sbatch"
grep -q '^#SBATCH --time=00:01:00$' "$script" || die "no time limit in the script: $(cat "$script")"
grep -q '^#SBATCH --signal=B:USR1@30$' "$script" || die "no warning signal in the script: $(cat "$script")"
log="$work/sweep/slurm/worker-${job}_0.out"

# Waits for the task to leave the queue. Each time it has requeued itself, Slurm holds it for 121 s
# (Reason=BeginTime); the test releases it in the next second instead (slurm_release_requeued,
# decision 141), which changes nothing else.
restarts=0
deadline=$((SECONDS + 300))
while ((SECONDS < deadline)); do
  info=$(scontrol -o show job "${job}_0" 2> /dev/null || true)
  [[ -n $info && -n $(squeue --noheader --jobs="$job" --format=%i 2> /dev/null) ]] || break
  r=$(sed -n 's/.* Restarts=\([0-9]*\) .*/\1/p' <<< "$info")
  if [[ $info == *"JobState=PENDING"* ]] && ((r > restarts)); then
    restarts=$r
    echo "requeued itself (restart $r) at $SECONDS s"
    slurm_release_requeued "${job}_0"
  fi
  sleep 0.1
done
info=$(scontrol -o show job "${job}_0")
[[ -z $(squeue --noheader --jobs="$job" --format=%i) ]] || { slurm_cluster_logs; die "job $job still queued after 300 s: $info"; }
state=$(sed -n 's/.* JobState=\([A-Z_]*\) .*ExitCode=\([0-9:]*\) .*/\1 \2/p' <<< "$info")
[[ $state == "COMPLETED 0:0" ]] || { slurm_cluster_logs; die "job $job ended '$state' (want COMPLETED 0:0): $info; $(cat "$log")"; }
restarts=$(sed -n 's/.* Restarts=\([0-9]*\) .*/\1/p' <<< "$info")
((restarts >= 1)) || die "the task never requeued itself (Restarts=$restarts): $(cat "$log")"
grep -q "restart 1 " "$log" || die "no second run in the task's log: $(cat "$log")"
# slurmctld sent the warning (nothing else here signals the job), and the batch shell got it.
grep -q "job_signal: 10 of running JobId=${job}_0" "$slurm_cluster_dir/log/slurmctld.log" ||
  die "slurmctld sent no SIGUSR1: $(grep "JobId=${job}_0" "$slurm_cluster_dir/log/slurmctld.log")"
grep -q "^expt slurm: SIGUSR1 at .*: the time limit is near" "$log" || die "the batch shell got no SIGUSR1: $(cat "$log")"
# The worker stopped on it: a checkpoint, its lease released, exit 143.
grep -q "^expt: worker stopped by SIGTERM; its trial wrote a checkpoint and released its lease" "$log" ||
  die "the worker did not stop on the warning: $(cat "$log")"
# The trial it stopped was interrupted by SIGTERM at step S (attempts.jsonl), its lease released by
# that worker (the claim log), then claimed again by the next run's worker, which resumed it from
# step S; every trial ended COMPLETED.
"$EXPT_PYTHON" - "$work/sweep/trials" "$work/claims.jsonl" << 'EOF' || die "no trial was stopped and resumed: $(cat "$log")"
import json, pathlib, sys
claims = [json.loads(l) for l in open(sys.argv[2])]
resumed = []
for attempts in sorted(pathlib.Path(sys.argv[1]).glob("*/attempts.jsonl")):
    trial = attempts.parent.name
    events = [json.loads(l) for l in open(attempts)]
    for i, e in enumerate(events):
        if e["event"] != "interrupted" or e.get("signal") != 15:
            continue
        nxt = next((n for n in events[i + 1:] if n["event"] == "start"), None)
        assert nxt and nxt["from_step"] == e["step"] > 0 and nxt["host_pid"] != e["host_pid"], (trial, events)
        mine = [c for c in claims if c["trial"] == trial]
        released = [k for k, c in enumerate(mine) if c["pid"] == e["host_pid"] and c["event"] == "release"]
        assert released, (trial, mine)
        assert any(c["event"] == "claim" and c["pid"] == nxt["host_pid"] for c in mine[released[-1]:]), (trial, mine)
        resumed.append(f"{trial} stopped at step {e['step']}, resumed by the next run")
    assert events[-1]["event"] == "end" and events[-1]["status"] == "COMPLETED", (trial, events)
assert resumed, "no trial was interrupted by SIGTERM"
print("; ".join(resumed))
EOF
# Every lease released at the end (the stopped run's generation was replaced by the next run's).
"$EXPT_PYTHON" -c 'import json, pathlib, sys
held = [str(p) for p in pathlib.Path(sys.argv[1]).glob("*/*.lease") if not json.load(open(p)).get("released")]
assert not held, held' "$work/sweep/leases" || die "a lease was left held"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/sweep" || die "the time-limited job's sweep differs from the 1-process sweep"
# When each run started and when its warning came (docs/distributed.md "Slurm").
grep "^expt slurm: " "$log"
echo "PASS: the time limit's warning stopped and requeued the task $restarts time(s); the sweep equals the 1-process sweep; $SECONDS s"
