#!/usr/bin/env bash
# WSD branches (docs/sweeps.md "Branches"): with scales.branching: wsd the data ratios of one point
# share a trunk. For two mixers (compare: attention, gla) and two optimizers (adamw, muon):
#  - `expt plan` marks trunks and branches, each branch forking at its own cooldown start, and the
#    tokens saved are the branches' shared steps;
#  - every branch of a sweep forked (attempts.jsonl), and every trial of the sweep equals, bit for
#    bit, `expt run trials/<id>/trial.yaml` from scratch in another directory (every metric row and
#    the summary: the trunk is a pure prefix);
#  - the same after a SIGKILL of the sweep during a trunk and again during a branch, then a rerun;
#  - under mpirun (a coordinator, 2 groups; and 1 group of 2 data-parallel ranks) and with two `expt worker`s: branches wait for their
#    trunk's fork point; coordinate descent's first round branches as the grid does, and a coordinate-descent
#    sweep runs to the same round records in one process and with two workers;
#  - branching with a cosine schedule, or a warmup given as a fraction, is refused at its line.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/study.yaml" <<'YAML'
study: branches
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {lr: 1.0e-2, weight_decay: 0.1}
  schedule: {type: wsd, warmup: 4, decay: 0.25}
  train: {batch_size: 8, eval_every: 10, eval_batches: 1, checkpoint_every: 25}
search:
  strategy: grid
  seeds: [1]
  optimizers:
    adamw: {space: {optimizer.lr: [3.0e-3, 1.0e-2]}}
    muon: {}
compare: {model.mixer.type: [attention, gla]}
scales:
  tokens_per_param: 1
  data_ratios: [1, 2, 3]
  models: {s: {d_model: 16}}
  branching: wsd
sweep: {ranks_per_trial: 1, max_attempts: 2}
YAML

# ---- expt plan: trunks, branches, tokens saved
"$EXPT" plan "$work/study.yaml" > "$work/plan.out" 2>&1 || die "expt plan failed: $(cat "$work/plan.out")"
"$EXPT_PYTHON" - "$work/plan.out" <<'PY' || die "plan output: $(cat "$work/plan.out")"
import re, sys
text = open(sys.argv[1]).read()
rows = {}
for m in re.finditer(r"^  ([0-9a-f]{16})  (\S+)\s+seed (\d+)\s+steps (\d+)\s+params \d+\s+(.*)$", text, re.M):
    rows[m.group(1)] = (m.group(2), int(m.group(4)), m.group(5))
assert len(rows) == 18, len(rows)  # 3 points x 2 mixers x 3 ratios
per_step = 8 * 12
independent = branched = 0
branches = 0
trunks = set()
for tid, (cell, steps, rest) in rows.items():
    independent += steps * per_step
    b = re.search(r"\[branch of ([0-9a-f]{16}) from step (\d+)\]", rest)
    if not b:
        branched += steps * per_step
        continue
    trunk, c = b.group(1), int(b.group(2))
    # The cooldown start: steps - round(decay * steps) (optim::wsd_decay_start; no .5 ties here).
    assert c == steps - round(0.25 * steps), (tid, steps, c)
    assert rows[trunk][1] > steps and rows[trunk][0].rsplit("/x", 1)[0] == cell.rsplit("/x", 1)[0], (tid, trunk)
    assert cell.endswith("/x1") or cell.endswith("/x2"), cell
    assert "[trunk of 2 branch(es)]" in rows[trunk][2], rows[trunk]
    branches += 1
    trunks.add(trunk)
    branched += (steps - c) * per_step
assert branches == 12 and len(trunks) == 6, (branches, trunks)
m = re.search(r"WSD branches: (\d+) trunk\(s\), (\d+) branch\(es\); (\S+) training tokens instead of (\S+) for "
              r"independent runs \((\S+) saved, ([\d.]+)%\)", text)
assert m, "no WSD branches line"
assert (int(m.group(1)), int(m.group(2))) == (6, 12), m.groups()
assert abs(float(m.group(3)) - branched) <= 1e-3 * branched and abs(float(m.group(4)) - independent) <= 1e-3 * independent, (m.groups(), branched, independent)
print(f"plan: 6 trunks, 12 branches, {branched} tokens instead of {independent}")
open(sys.argv[1] + ".branched", "w").write(str(branched))
PY

# ---- a sweep, then each trial from scratch elsewhere
"$EXPT" sweep "$work/study.yaml" --out "$work/a" > "$work/a.out" 2>&1 || die "sweep failed: $(cat "$work/a.out")"
forked=$(grep -l '"event":"fork"' "$work"/a/trials/*/attempts.jsonl | wc -l)
[[ $forked -eq 12 ]] || die "$forked of 12 branches forked: $(grep -h fork "$work"/a/trials/*/attempts.jsonl)"
! grep -q '"event":"fork_skipped"' "$work"/a/trials/*/attempts.jsonl || die "a branch did not fork"
[[ $(ls -d "$work"/a/trials/*/forks/step-*/ | wc -l) -eq 12 ]] || die "the trunks do not keep 12 fork points"
# expt analyze's tuning budget counts what the sweep trained: a branch only its steps after the fork.
"$EXPT" analyze "$work/a" > "$work/analyze.out" 2>&1 || die "expt analyze failed: $(cat "$work/analyze.out")"
"$EXPT_PYTHON" - "$work/a/analysis/analysis.json" "$(cat "$work/plan.out.branched")" <<'PY' || die "budget: $(grep -A4 'Tuning budget' "$work/analyze.out")"
import json, sys
a = json.load(open(sys.argv[1]))
spent = sum(r["tokens"] for r in a["tables"]["budget"])
assert spent == int(sys.argv[2]), (spent, sys.argv[2])
PY
for t in "$work"/a/trials/*/; do
  id=$(basename "$t")
  "$EXPT" run "$t/trial.yaml" --out "$work/alone/$id" > "$work/alone-$id.out" 2>&1 || die "expt run $id failed"
  "$EXPT_PYTHON" "$scripts/compare_results.py" "$t/result.h5" "$work/alone/$id/result.h5" > "$work/cmp.out" \
    || die "trial $id of the sweep differs from its standalone run: $(cat "$work/cmp.out")"
done

compare_all() {  # $1 sweep directory: every trial equals its standalone run
  local n=0
  for t in "$1"/trials/*/; do
    id=$(basename "$t")
    "$EXPT_PYTHON" "$scripts/compare_results.py" "$t/result.h5" "$work/alone/$id/result.h5" > "$work/cmp.out" \
      || die "$1: trial $id differs from its standalone run: $(cat "$work/cmp.out")"
    n=$((n + 1))
  done
  [[ $n -eq 18 ]] || die "$1 holds $n trials"
}

# ---- SIGKILL during a trunk, then during a branch, then finish
slow() {  # $1 out directory: the sweep in its own session, slowed down
  EXPT_TEST_STEP_DELAY_MS=15 setsid "$EXPT" sweep "$work/study.yaml" --out "$1" >> "$work/k.out" 2>&1 &
  sweep_sid=$!
}
slow "$work/k"
wait_for_file "$(dirname "$work/k/trials/x")" 60
for _ in $(seq 1 1200); do compgen -G "$work/k/trials/*/forks/step-*/COMMIT" > /dev/null && break; sleep 0.05; done
compgen -G "$work/k/trials/*/forks/step-*/COMMIT" > /dev/null || die "no fork point appeared: $(cat "$work/k.out")"
kill_session "$sweep_sid"
! compgen -G "$work/k/trials/*/result.h5" > /dev/null || die "a trial finished before the kill: make the trunk slower"
slow "$work/k"
for _ in $(seq 1 2400); do grep -qs '"event":"fork"' "$work"/k/trials/*/attempts.jsonl && break; sleep 0.05; done
grep -qs '"event":"fork"' "$work"/k/trials/*/attempts.jsonl || die "no branch started: $(cat "$work/k.out")"
sleep 0.1
kill_session "$sweep_sid"
"$EXPT" sweep "$work/study.yaml" --out "$work/k" > "$work/k2.out" 2>&1 || die "rerun after kills failed: $(cat "$work/k2.out")"
compare_all "$work/k"

# ---- under mpirun: a coordinator and two groups
mpirun -np 3 "$EXPT" sweep "$work/study.yaml" --out "$work/m" > "$work/m.out" 2>&1 || die "mpirun sweep failed: $(cat "$work/m.out")"
compare_all "$work/m"
forked=$(grep -l '"event":"fork"' "$work"/m/trials/*/attempts.jsonl | wc -l)
[[ $forked -eq 12 ]] || die "mpirun: $forked of 12 branches forked"

# ---- data-parallel trials (2 ranks a trial): the trainer shares the leader's fork points
sed 's/optimizer.lr: \[3.0e-3, 1.0e-2\]/optimizer.lr: [1.0e-2]/' "$work/study.yaml" > "$work/dp.yaml"
mpirun -np 3 "$EXPT" sweep "$work/dp.yaml" --set sweep.ranks_per_trial=2 --out "$work/dp" > "$work/dp.out" 2>&1 || die "data-parallel sweep failed: $(cat "$work/dp.out")"
forked=$(grep -l '"event":"fork"' "$work"/dp/trials/*/attempts.jsonl | wc -l)
[[ $forked -eq 8 ]] || die "data-parallel: $forked of 8 branches forked"
for t in "$work"/dp/trials/*/; do
  id=$(basename "$t")
  mpirun -np 2 "$EXPT" run "$t/trial.yaml" --out "$work/alone-dp/$id" > "$work/alone-dp-$id.out" 2>&1 || die "mpirun expt run $id failed"
  "$EXPT_PYTHON" "$scripts/compare_results.py" "$t/result.h5" "$work/alone-dp/$id/result.h5" > "$work/cmp.out" \
    || die "data-parallel trial $id differs from its standalone run: $(cat "$work/cmp.out")"
done

# ---- two `expt worker`s on one directory (leases: a branch waits while the other worker's trunk runs)
two_workers "$work/study.yaml" "$work/w" 5
compare_all "$work/w"
forked=$(grep -l '"event":"fork"' "$work"/w/trials/*/attempts.jsonl | wc -l)
[[ $forked -eq 12 ]] || die "workers: $forked of 12 branches forked"

# ---- coordinate descent: the first round's points at every ratio branch too
sed 's/strategy: grid/strategy: coordinate_descent/' "$work/study.yaml" > "$work/cd.yaml"
"$EXPT" plan "$work/cd.yaml" > "$work/cd.out" 2>&1 || die "expt plan (coordinate descent) failed: $(cat "$work/cd.out")"
grep -q "^first round: WSD branches: 6 trunk(s), 12 branch(es)" "$work/cd.out" || die "coordinate descent plan: $(cat "$work/cd.out")"
# ... and runs, in one process and with two workers, to the same rounds. A cell of a study with
# scales is named optimizer/compare/model/ratio, so its round records sit in nested folders.
"$EXPT" sweep "$work/cd.yaml" --out "$work/cd" > "$work/cd-sweep.out" 2>&1 || die "coordinate descent sweep failed: $(cat "$work/cd-sweep.out")"
two_workers "$work/cd.yaml" "$work/cdw" 5
(cd "$work/cd/coordinator/rounds" && find . -name '*.round-*.json' | sort) > "$work/cd-rounds.txt"
(cd "$work/cdw/coordinator/rounds" && find . -name '*.round-*.json' | sort) > "$work/cdw-rounds.txt"
# Every cell (2 optimizers x 2 mixers x 3 ratios) records at least its first round.
[[ $(grep -c 'round-0.json$' "$work/cd-rounds.txt") -eq 12 ]] || die "coordinate descent rounds: $(cat "$work/cd-rounds.txt")"
cmp "$work/cd-rounds.txt" "$work/cdw-rounds.txt" || die "the workers recorded other rounds than the sweep"
while read -r f; do
  cmp "$work/cd/coordinator/rounds/$f" "$work/cdw/coordinator/rounds/$f" || die "round record $f differs"
done < "$work/cd-rounds.txt"
for d in "$work/cd" "$work/cdw"; do
  "$EXPT_PYTHON" - "$d/status.json" <<'PY' || die "the coordinate descent study in $d did not finish: $(cat "$d/status.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["counts"]["COMPLETED"] == len(s["trials"]) > 0, s["counts"]
assert len(s["coordinate_descent"]) == 12 and all(c["converged"] for c in s["coordinate_descent"])
PY
done

# ---- refused configs, at the line and column of the key's value
refused() {  # $1 sed expression applied to the study, $2 expected text
  sed "$1" "$work/study.yaml" > "$work/refused.yaml"
  set +e
  "$EXPT" plan "$work/refused.yaml" > "$work/refused.out" 2>&1
  local rc=$?
  set -e
  [[ $rc -eq 2 ]] || die "$1: expected exit code 2, got $rc: $(cat "$work/refused.out")"
  grep -qF "$2" "$work/refused.out" || die "$1: expected '$2' in: $(cat "$work/refused.out")"
}
refused 's/type: wsd, warmup: 4, decay: 0.25/type: cosine, warmup: 4/' "refused.yaml:6:20: schedule.type: scales.branching: wsd needs schedule.type wsd"
refused 's/warmup: 4/warmup: 0.1/' "refused.yaml:6:33: schedule.warmup: scales.branching: wsd needs the warmup in steps"
refused 's/data_ratios: \[1, 2, 3\]/data_ratios: [2]/' "refused.yaml:19:14: scales.branching: branching shares a trunk"
echo "wsd branches: plan, sweep, kills and mpirun all equal to standalone runs"
