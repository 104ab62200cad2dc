#!/usr/bin/env bash
# Live progress under mpirun: while a trial runs, its group leader reports step / loss / tokens per
# second to the coordinator every few seconds, status.json (rewritten by rename) shows them, and
# `expt status` prints them. The run is slowed down by the test hook EXPT_TEST_STEP_DELAY_MS, then
# stopped with SIGTERM (running trials checkpoint, exit code 128 + 15).
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

study="$EXPT_SOURCE_DIR/configs/sweep_small.yaml"
EXPT_TEST_STEP_DELAY_MS=40 mpirun -np 3 "$EXPT" sweep "$study" --out "$work/sweep" > "$work/sweep.out" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT

# Wait (up to 60 s) for status.json to show a running trial at step >= 10: a report after the
# first one (checkpoints are every 50 steps, so this is not checkpoint progress).
found=""
for _ in $(seq 600); do
  if [[ -e $work/sweep/status.json ]]; then
    found=$("$EXPT_PYTHON" - "$work/sweep/status.json" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
for t in s["trials"]:
    if t["state"] == "running" and t["step"] and t["step"] >= 10 and t["loss"] is not None and t["tokens_per_s"]:
        print(t["id"], t["step"], t["loss"], t["tokens_per_s"])
        break
PY
)
  fi
  [[ -n $found ]] && break
  kill -0 $pid 2>/dev/null || die "the sweep ended before any progress was seen: $(cat "$work/sweep.out")"
  sleep 0.1
done
[[ -n $found ]] || die "no live progress in status.json: $(cat "$work/sweep/status.json")"
read -r id step loss tps <<< "$found"
echo "sweep_progress: status.json shows trial $id at step $step, loss $loss, $tps tokens/s"

"$EXPT" status "$work/sweep" > "$work/status.out" 2>&1 || die "expt status failed: $(cat "$work/status.out")"
# The table (the trial above may have finished meanwhile): a running trial with a step and a loss.
grep -E " running +[1-9][0-9]*/150 +train [0-9]+\.[0-9]+ @[0-9]+ +[0-9]+ " "$work/status.out" > /dev/null \
  || die "expt status does not show a running trial's step and loss: $(cat "$work/status.out")"

kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
trap - EXIT
[[ $rc -ne 0 ]] || die "a sweep stopped by SIGTERM exited 0"
echo "sweep_progress: ok"
