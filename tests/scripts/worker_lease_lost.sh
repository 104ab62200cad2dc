#!/usr/bin/env bash
# ctest-labels: slow
# A worker that loses its lease stops at its next step boundary and commits nothing
# (docs/distributed.md "Workers and leases", decisions 95 and 134):
# - worker A trains a trial; `expt status` shows A's heartbeat, the trial's lease (held, renewed
#   within ttl/4, expiring) and a truncated lease file planted on another trial (unreadable,
#   expiring ttl after its last change);
# - A is paused (SIGSTOP) past its lease's expiry (ttl 2 s + skew bound 1 s); `expt status` shows the
#   lease expired; worker B takes the lease over but leaves the trial while A, paused, still holds
#   the trial directory's lock (it would only fail on it), and trains the other trials;
# - resumed (SIGCONT), A finds at its next step boundary that its lease is gone, says so and writes
#   nothing more: the trial's next attempt resumes from the checkpoint A committed last, and the
#   whole directory is bit-identical to a one-process `expt sweep` (compare_sweeps.py). No trial
#   FAILED on the way.
source "$(dirname "$0")/lib.sh"

study=$EXPT_SOURCE_DIR/tests/fixtures/small_grid_study.yaml
"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"
ids=($("$EXPT_PYTHON" -c "import json,sys; print(' '.join(t['id'] for t in json.load(open(sys.argv[1]))['trials']))" "$work/ref/status.json"))

export EXPT_LEASE_TTL_S=2 EXPT_LEASE_SKEW_S=1
dir=$work/w
# A lease file cut short (a writer that died mid-write on a filesystem without atomic rename).
last=${ids[${#ids[@]} - 1]}
mkdir -p "$dir/leases/$last"
printf '{"trial":"%s","generation":1,"worker":"gone-1234' "$last" > "$dir/leases/$last/1.lease"

# Waits until `expt status $dir` matches every pattern given (up to 60 s).
wait_status() {
  local i p ok
  for ((i = 0; i < 600; i++)); do
    if "$EXPT" status "$dir" > "$work/status.out" 2>&1; then
      ok=1
      for p in "$@"; do grep -qE -- "$p" "$work/status.out" || ok=0; done
      ((ok)) && return 0
    fi
    sleep 0.1
  done
  die "expt status never matched '$*': $(cat "$work/status.out")"
}

# The latest committed checkpoint step of trial $1 (0: none).
committed() {
  local c best=0 s
  for c in "$dir/trials/$1"/checkpoints/step-*/COMMIT; do
    [[ -e $c ]] || continue
    s=${c%/COMMIT}
    s=${s##*/step-}
    ((s > best)) && best=$s
  done
  echo "$best"
}

# ---- A trains, its lease is held and renewed ----
EXPT_TEST_STEP_DELAY_MS=100 "$EXPT" worker "$study" --out "$dir" > "$work/a.out" 2>&1 &
a=$!
for ((i = 0; i < 600; i++)); do
  grep -q "^\[worker\] start" "$work/a.out" && break
  sleep 0.1
done
trial=$(sed -n 's/^\[worker\] start \([0-9a-f]*\) .*/\1/p' "$work/a.out" | head -n 1)
[[ -n $trial ]] || die "worker A started no trial: $(cat "$work/a.out")"
wid=$(sed -n 's/^\[worker \([^]]*\)\] .*/\1/p' "$work/a.out" | head -n 1)
sleep 2.5 # 25 steps of 100 ms: past a few checkpoints (every 5 steps) and renewals (every 0.5 s)
wait_status "^processes \(heartbeats\):" "^  worker $wid +running +last beat .*training $trial" \
  "^leases \(held or expired, not released\):" \
  "^  $trial  generation 1 held by $wid for [0-9]+s, renewed 0\.[0-9] s ago, expires in [12]\.[0-9] s$" \
  "^  $last  generation 1: unreadable, counts as expired 2 s after its last change \(.* s( ago)?\)$"
"$EXPT_PYTHON" - "$dir/leases/$trial/1.lease" << 'PY' || die "the lease was not renewed: $(cat "$dir/leases/$trial/1.lease")"
import json, sys
l = json.load(open(sys.argv[1]))
assert l["renewed_s"] - l["acquired_s"] >= 1.5, l    # renewed every ttl/4 = 0.5 s for 2.5 s
assert abs(l["expires_s"] - l["renewed_s"] - 2) < 1e-6, l
PY

# ---- A paused past its lease's expiry ----
kill -STOP $a
ckpt=$(committed "$trial")
((ckpt >= 5)) || die "A committed no checkpoint before the pause"
sleep 4 # > ttl + skew bound
wait_status "^  $trial  generation 1 held by $wid for [0-9]+s, renewed [0-9]+\.[0-9] s ago, expired [0-9]+\.[0-9] s ago$"

# ---- B takes the lease over, leaves the trial to the paused holder of its lock ----
EXPT_TEST_STEP_DELAY_MS=20 "$EXPT" worker "$study" --out "$dir" > "$work/b.out" 2>&1 &
b=$!
for ((i = 0; i < 600; i++)); do
  grep -q "^\[worker\] start" "$work/b.out" && break
  sleep 0.1
done
grep -q "^\[worker\] $trial: lease taken over, but its directory is still locked by the process that lost it" \
  "$work/b.out" || die "B did not leave the locked trial: $(cat "$work/b.out")"
grep -q "^\[worker\] start $trial" "$work/b.out" && die "B started the trial a paused process holds: $(cat "$work/b.out")"
sleep 1

# ---- A resumed: its lease is gone, it stops at its next step boundary ----
kill -CONT $a
wait $a || die "worker A failed: $(cat "$work/a.out")"
wait $b || die "worker B failed: $(cat "$work/b.out")"
lost=$(sed -n "s/^\[worker\] $trial: lease lost at step \([0-9]*\), another worker owns the trial now; nothing committed$/\1/p" "$work/a.out")
[[ -n $lost ]] || die "A did not stop on its lost lease: $(cat "$work/a.out")"
((lost < 80)) || die "A trained the trial to its end ($lost steps) after losing its lease"
grep -q "FAILED" "$work/a.out" "$work/b.out" && die "a trial FAILED: $(cat "$work/a.out" "$work/b.out")"
# A's attempt ended with nothing written; the next attempt resumed from A's last checkpoint: the
# one committed before the pause, or the next one if the pause fell inside its write (the lease is
# asked before a checkpoint is begun, not inside it), never past the step where A stopped.
"$EXPT_PYTHON" - "$dir/trials/$trial/attempts.jsonl" "$ckpt" "$lost" << 'PY' || die "attempts of $trial: $(cat "$dir/trials/$trial/attempts.jsonl")"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kinds = [e["event"] for e in events if e["event"] in ("start", "interrupted", "end", "fail")]
assert kinds == ["start", "start", "end"], kinds
starts = [e for e in events if e["event"] == "start"]
ckpt, lost = int(sys.argv[2]), int(sys.argv[3])
assert starts[0]["from_step"] == 0, starts
assert starts[1]["from_step"] in (ckpt, ckpt + 5) and starts[1]["from_step"] <= lost, (starts, ckpt, lost)
PY
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$dir" || die "the workers' sweep differs from one sweep"
echo "worker_lease_lost: A lost its lease at step $lost (paused after committing step $ckpt), nothing committed; ok"
