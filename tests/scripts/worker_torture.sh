#!/usr/bin/env bash
# ctest-labels: slow
# Lease torture for `expt worker` (docs/distributed.md "Workers and leases", docs/reliability.md):
# three workers whose clocks are off by up to 3 s (EXPT_TEST_CLOCK_OFFSET_S, within the 4 s skew
# bound), a garbage lease file and a lease left by a dead host planted first, and at least 10
# SIGKILLs of random workers at random moments (each replaced at once): the result directory is
# bit-identical to a one-process `expt sweep` (compare_sweeps.py), and the claim log
# (EXPT_TEST_CLAIM_LOG: every claim and release with its pid and time, a killed worker's claim
# ending at its kill) shows that no two workers ever held one trial at the same time.
# Negative control: with leases disabled (EXPT_TEST_NO_LEASES=1) the same checker must find a trial
# trained by two workers at once.
# WORKER_TORTURE_SEED=<n> replays the kill times of a run (printed below).
source "$(dirname "$0")/lib.sh"

seed=${WORKER_TORTURE_SEED:-$(date +%s)}
RANDOM=$seed
study=$EXPT_SOURCE_DIR/tests/fixtures/small_grid_study.yaml
"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "reference sweep failed: $(cat "$work/ref.out")"

# The claim log checker: per trial, the (claim, end) intervals of different workers must not overlap.
check_claims() {
  "$EXPT_PYTHON" - "$1" "$2" <<'PY'
import json, sys, collections
claims = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kills = {}
for line in open(sys.argv[2]):
    if line.strip():
        pid, t = line.split()
        kills[int(pid)] = float(t)
intervals = collections.defaultdict(list)
open_claims = {}
for c in sorted(claims, key=lambda c: c["t"]):
    key = (c["trial"], c["pid"])
    if c["event"] == "claim":
        open_claims[key] = c["t"]
    else:
        intervals[c["trial"]].append((open_claims.pop(key), c["t"], c["pid"]))
for (trial, pid), t in open_claims.items():
    if pid not in kills:
        sys.exit(f"claim of {trial} by {pid} never ended and {pid} was not killed")
    intervals[trial].append((t, kills[pid], pid))
for trial, iv in intervals.items():
    iv.sort()
    for (s1, e1, p1), (s2, e2, p2) in zip(iv, iv[1:]):
        if s2 < e1:
            print(f"DOUBLE RUN: trial {trial} held by {p1} [{s1:.3f}, {e1:.3f}] and {p2} from {s2:.3f}")
            sys.exit(1)
print(f"claims: {sum(len(v) for v in intervals.values())} intervals over {len(intervals)} trials, none overlapping")
PY
}

# ---- torture ----
export EXPT_LEASE_TTL_S=2 EXPT_LEASE_SKEW_S=4
dir=$work/torture
log=$work/claims.jsonl kills=$work/kills.txt
: > "$kills"
mkdir -p "$dir/leases"
ids=($("$EXPT_PYTHON" -c "import json,sys; print(' '.join(t['id'] for t in json.load(open(sys.argv[1]))['trials']))" "$work/ref/status.json"))
# A garbage lease (counts as expired 2 + 4 s after it was written) and one from a dead host.
mkdir -p "$dir/leases/${ids[0]}" "$dir/leases/${ids[1]}"
printf '\x01garbage{' > "$dir/leases/${ids[0]}/1.lease"
now=$(date +%s.%N)
printf '{"trial":"%s","generation":3,"worker":"gone","host":"dead.example","pid":4242,"acquired_s":%s,"renewed_s":%s,"expires_s":%s,"ttl_s":2,"released":false}\n' \
  "${ids[1]}" "$now" "$now" "$(echo "$now + 2" | bc)" > "$dir/leases/${ids[1]}/3.lease"

offsets=(-1.5 0 1.5)
launch() {
  EXPT_TEST_CLAIM_LOG=$log EXPT_TEST_STEP_DELAY_MS=40 EXPT_TEST_CLOCK_OFFSET_S=${offsets[$1]} \
    "$EXPT" worker "$study" --out "$dir" >> "$dir.worker$1.log" 2>&1 &
  pids[$1]=$!
}
pids=()
for i in 0 1 2; do launch $i; done
n_kills=0
for ((round = 0; n_kills < 10; round++)); do
  ((round < 200)) || die "only $n_kills kills landed (seed $seed)"
  sleep "0.$((3 + RANDOM % 7))"
  i=$((RANDOM % 3))
  pid=${pids[$i]}
  if kill -0 "$pid" 2> /dev/null; then
    kill -9 "$pid"
    echo "$pid $(date +%s.%N)" >> "$kills"
    wait "$pid" 2> /dev/null || true
    n_kills=$((n_kills + 1))
    launch $i
  else
    wait "$pid" 2> /dev/null || true
    die "a worker finished after only $n_kills kills; make the study slower (seed $seed)"
  fi
done
echo "worker_torture: $n_kills SIGKILLs (seed $seed)"
for i in 0 1 2; do wait "${pids[$i]}" || die "worker $i failed: $(tail -5 "$dir.worker$i.log")"; done
resumed=$(cat "$dir"/trials/*/attempts.jsonl | grep '"event":"start"' | grep -vc '"from_step":0' || true)
((resumed >= 1)) || die "no trial resumed from a checkpoint; the kills proved nothing (seed $seed)"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$dir" || die "tortured workers differ from one sweep (seed $seed)"
check_claims "$log" "$kills" || die "a trial was held by two workers at once (seed $seed)"
grep -q "${ids[1]}" "$log" || die "the dead host's trial was never claimed"

# ---- negative control: no leases ----
: > "$kills"
EXPT_TEST_NO_LEASES=1 EXPT_TEST_CLAIM_LOG=$work/nolease.jsonl EXPT_TEST_STEP_DELAY_MS=10 \
  "$EXPT" worker "$study" --out "$work/nolease" > "$work/nolease-a.out" 2>&1 &
a=$!
EXPT_TEST_NO_LEASES=1 EXPT_TEST_CLAIM_LOG=$work/nolease.jsonl EXPT_TEST_STEP_DELAY_MS=10 \
  "$EXPT" worker "$study" --out "$work/nolease" > "$work/nolease-b.out" 2>&1 &
b=$!
wait $a || true
wait $b || true
if check_claims "$work/nolease.jsonl" "$kills"; then
  die "negative control: workers without leases were not caught training a trial twice at once"
fi
echo "worker_torture: ok (negative control caught the double run)"
