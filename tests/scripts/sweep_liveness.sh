#!/usr/bin/env bash
# ctest-labels: slow
# Liveness from heartbeats (docs/sweeps.md "Liveness", docs/reliability.md):
# 1. a one-process `expt sweep` is "running" in `expt status` while it beats; SIGKILLed, it is
#    "interrupted (last heartbeat N s ago)" within 3 heartbeat periods (6 s), its trial is no longer
#    running, the command to resume is shown, and `expt analyze` does not claim it is running;
# 2. the same for an `expt sweep` under mpirun (its coordinator beats) killed with SIGKILL;
# 3. SIGTERM to an `expt worker`: it checkpoints, releases its lease, beats "stopped", exits 143;
#    a worker started again completes the sweep bit-identically to an uninterrupted `expt sweep`;
# 4. `expt sweep` refuses a directory that a live worker works on;
# 5. `expt status --watch 1` redraws until the sweep ends, then exits 0.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/study.yaml" <<'YAML'
study: liveness
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {type: adamw, weight_decay: 0.1}
  schedule: {type: cosine, warmup: 5}
  train: {steps: 40, batch_size: 8, eval_every: 10, eval_batches: 1, checkpoint_every: 5}
search:
  strategy: grid
  seeds: [1]
  space:
    optimizer.lr: [1.0e-3, 3.0e-3]
sweep: {ranks_per_trial: 1}
YAML
study=$work/study.yaml

# Waits until `expt status $1` output matches $2 (up to $3 seconds); prints the seconds it took.
wait_status() {
  local t0 i
  t0=$(date +%s.%N)
  for ((i = 0; i < $3 * 10; i++)); do
    if "$EXPT" status "$1" > "$work/status.out" 2>&1 && grep -qE "$2" "$work/status.out"; then
      echo "$(date +%s.%N) - $t0" | bc
      return 0
    fi
    sleep 0.1
  done
  die "expt status $1 never matched '$2' within $3 s: $(cat "$work/status.out")"
}

# Kills with SIGKILL the sweep launched by $@ (in its own session) once its first trial started,
# then checks status and analyze.
kill_and_check() {
  local name=$1
  shift
  EXPT_TEST_STEP_DELAY_MS=100 setsid "$@" --out "$work/$name" > "$work/$name.out" 2>&1 &
  local pid=$!
  wait_for_file "$work/$name/heartbeats" 60
  wait_status "$work/$name" "^sweep .*: running \(1 process alive\)" 60 > /dev/null
  wait_status "$work/$name" " running +[0-9-]+/40 " 60 > /dev/null
  kill_session $pid
  local took
  took=$(wait_status "$work/$name" "interrupted \(last heartbeat [0-9]+ s ago\)" 8)
  echo "sweep_liveness: $name: status says interrupted ${took} s after the SIGKILL"
  grep -qE "^[0-9a-f]{16} .* running " "$work/status.out" && die "$name: a trial still shows running: $(cat "$work/status.out")"
  grep -qE " interrupted +[0-9-]+/40 " "$work/status.out" || die "$name: the killed trial is not interrupted: $(cat "$work/status.out")"
  grep -q "^resume with: .*expt sweep $study --out $work/$name" "$work/status.out" \
    || die "$name: no resume command: $(cat "$work/status.out")"
  "$EXPT" analyze "$work/$name" > "$work/$name.analyze" 2>&1 || true
  grep -q "still running" "$work/$name.analyze" && die "$name: analyze claims the sweep is running: $(cat "$work/$name.analyze")"
  grep -q "sweep not running, interrupted (last heartbeat" "$work/$name.analyze" \
    || die "$name: analyze does not say the sweep was interrupted: $(cat "$work/$name.analyze")"
  # The dashboard judges as `expt status` does: no trial running, the sweep interrupted.
  start_server "$work/$name"
  "$EXPT_PYTHON" - "$serve_url" "$name" << 'PY' || die "$name: expt serve disagrees with expt status"
import json, sys, urllib.request
url, name = sys.argv[1], sys.argv[2]
o = json.load(urllib.request.urlopen(url + "api/overview?dir=0"))
a = json.load(urllib.request.urlopen(url + "api/analysis?dir=0"))
states = [t["state"] for t in o["trials"]]
assert o["liveness"]["state"] == "interrupted", o["liveness"]
assert "running" not in states and "interrupted" in states, states
assert a["partial"] and not a["running"], (a["partial"], a["running"])
print(f"sweep_liveness: {name}: expt serve says interrupted ({states.count('interrupted')} trial), analysis not running")
PY
  stop_server
}

kill_and_check alone "$EXPT" sweep "$study"
kill_and_check mpi mpirun -np 2 "$EXPT" sweep "$study"

# ---- SIGTERM to a worker ----
"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"
EXPT_TEST_STEP_DELAY_MS=100 "$EXPT" worker "$study" --out "$work/w" > "$work/w1.out" 2>&1 &
pid=$!
wait_status "$work/w" " running +[1-9][0-9]*/40 " 60 > /dev/null
kill -TERM $pid
set +e
wait $pid
rc=$?
set -e
((rc == 143)) || die "a worker stopped by SIGTERM exited $rc, not 143: $(cat "$work/w1.out")"
grep -q "worker stopped by SIGTERM" "$work/w1.out" || die "no stop message: $(cat "$work/w1.out")"
grep -q '"released":true' "$work"/w/leases/*/*.lease || die "the lease was not released"
grep -q '"released":false' "$work"/w/leases/*/*.lease && die "a lease is still held after SIGTERM"
"$EXPT" status "$work/w" > "$work/status.out" 2>&1
grep -qE "^sweep .*: stopped" "$work/status.out" || die "status after SIGTERM: $(cat "$work/status.out")"
grep -q "^resume with: .*expt worker" "$work/status.out" || die "no resume command: $(cat "$work/status.out")"
EXPT_TEST_STEP_DELAY_MS=20 "$EXPT" worker "$study" --out "$work/w" > "$work/w2.out" 2>&1 &
pid=$!
wait_status "$work/w" "^sweep .*: running \(1 process alive\)" 60 > /dev/null
# An `expt sweep` takes no leases: it refuses a directory that live workers work on.
if "$EXPT" sweep "$study" --out "$work/w" > "$work/sweep-on-workers.out" 2>&1; then
  die "expt sweep ran next to a live worker: $(cat "$work/sweep-on-workers.out")"
fi
grep -q "is being worked on by \`expt worker\`" "$work/sweep-on-workers.out" \
  || die "expt sweep next to a worker: $(cat "$work/sweep-on-workers.out")"
"$EXPT" status "$work/w" --watch 1 > "$work/watch.out" 2>&1 || die "status --watch failed: $(cat "$work/watch.out")"
wait $pid || die "the second worker failed: $(cat "$work/w2.out")"
(($(grep -c "^sweep .*: running" "$work/watch.out") >= 2)) || die "status --watch did not redraw: $(cat "$work/watch.out")"
tail -n 12 "$work/watch.out" | grep -qE "^sweep .*: finished" || die "status --watch did not end with the sweep: $(cat "$work/watch.out")"
resumed=$(cat "$work"/w/trials/*/attempts.jsonl | grep '"event":"start"' | grep -vc '"from_step":0' || true)
((resumed >= 1)) || die "the rerun did not resume from the SIGTERM checkpoint"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/w" || die "SIGTERM and rerun differ from one sweep"
echo "sweep_liveness: ok"
