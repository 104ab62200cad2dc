#!/usr/bin/env bash
# Successive halving at cooldown ends (docs/sweeps.md "Successive halving"), with real training.
# A study of three learning rates at three ratios (the synthetic reversal of halving_test.cpp holds
# the rule where rankings reverse; here the rankings are whatever this CPU's training gives):
#  - `expt plan` prints the schedule (3 -> 2 -> 1 points) and the tokens at most and at least, equal
#    to what the test computes from the plan's own trial rows;
#  - the reference: the same study with the pruning lifted (keep 1), every trial run;
#  - the halved sweep: exactly the trials the rung rule predicts from the reference's results are
#    PRUNED (the x4 winner among them when the rankings reverse between cooldown ends, which on
#    these tiny runs depends on the CPU's last bits), pruned trunks stopped at their rung's fork
#    point, no pruned trial trained past it; every surviving trial is bit for bit its standalone
#    `expt run trials/<id>/trial.yaml` (a paused then promoted trunk too); the fork events carry the
#    fork step; expt status shows PRUNED and the roles; expt analyze never ranks a pruned point, says
#    so, and counts what the pruned trunks trained in the budget; the Python reader agrees;
#  - SIGKILL while a trunk is paused and again while a promoted trunk trains, then the same command:
#    the same trials, states and bits;
#  - two `expt worker`s on one directory: the same trial set, states and bits; mpirun -np 3 too;
#  - lifting the pruning (--set search.halving.keep=1) on the halved sweep runs its PRUNED trials to
#    completion, equal to the reference;
#  - search.halving without scales.branching: wsd is refused at its line and column.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

cat > "$work/study.yaml" <<'YAML'
study: halving
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {weight_decay: 0.1}
  schedule: {type: wsd, warmup: 4, decay: 0.25}
  train: {batch_size: 8, eval_every: 10, eval_batches: 2, checkpoint_every: 25}
search:
  strategy: grid
  seeds: [1]
  halving: {keep: 0.34, min_points: 1}
  space:
    optimizer.lr: [LR_VALUES]
scales:
  tokens_per_param: TPP
  data_ratios: [1, 2, 4]
  models: {s: {d_model: 16}}
  branching: wsd
sweep: {ranks_per_trial: 1, max_attempts: 2}
YAML
sed -i "s/LR_VALUES/${HALVING_LRS:-1.0e-1, 1.0e-2, 1.0e-3}/; s/TPP/${HALVING_TPP:-4}/" "$work/study.yaml"

# ---- expt plan: the schedule and its tokens
"$EXPT" plan "$work/study.yaml" > "$work/plan.out" 2>&1 || die "expt plan failed: $(cat "$work/plan.out")"
"$EXPT_PYTHON" - "$work/plan.out" <<'PY' || die "plan output: $(cat "$work/plan.out")"
import re, sys
text = open(sys.argv[1]).read()
rows = {}
for m in re.finditer(r"^  ([0-9a-f]{16})  (\S+)\s+seed (\d+)\s+steps (\d+)\s+params \d+\s+(.*)$", text, re.M):
    rest = m.group(5)
    rows[m.group(1)] = (m.group(2), int(m.group(4)), re.search(r"optimizer\.lr=\S+", rest).group(0), rest)
assert len(rows) == 9, rows
per_step = 8 * 12
by = {}  # (point, ratio) -> (steps, fork step)
for tid, (cell, steps, point, rest) in rows.items():
    ratio = int(cell.rsplit("/x", 1)[1])
    b = re.search(r"from step (\d+)\]", rest)
    by[(point, ratio)] = (steps, int(b.group(1)) if b else 0)
points = sorted({p for p, _ in by})
# Every point trains the same steps: pruned after x1 a point costs n1 (its trunk to c1, then the
# cooldown), after x2 c2 + (n1 - c1) + (n2 - c2), the survivor n4 + (n1 - c1) + (n2 - c2).
(n1, c1), (n2, c2), (n4, _) = by[(points[0], 1)], by[(points[0], 2)], by[(points[0], 4)]
cost = [n1, c2 + (n1 - c1) + (n2 - c2), n4 + (n1 - c1) + (n2 - c2)]
expected = per_step * (1 * cost[0] + 1 * cost[1] + 1 * cost[2])  # 3 -> 2 -> 1 points
m = re.search(r"^  adamw/s: 3 at x1 -> 2 at x2 -> 1 at x4; (\S+) training tokens at most, (\S+) at least$",
              text, re.M)
assert m, "no schedule line"
assert abs(float(m.group(1)) - expected) <= 1e-3 * expected and m.group(1) == m.group(2), (m.groups(), expected)
m = re.search(r"^halving: (\S+) training tokens at most and (\S+) at least, instead of (\S+) with branches alone", text, re.M)
assert m and abs(float(m.group(3)) - 3 * per_step * cost[2]) <= 1e-3 * 3 * per_step * cost[2], (m and m.groups())
print(f"plan: 3 -> 2 -> 1 points, {expected} tokens instead of {3 * per_step * cost[2]} with branches alone")
open(sys.argv[1] + ".tokens", "w").write(str(expected))
PY

# ---- the reference: the same study without halving (search.halving is not part of its identity)
sed '/halving:/d' "$work/study.yaml" > "$work/full.yaml"
"$EXPT" sweep "$work/full.yaml" --out "$work/full" > "$work/full.out" 2>&1 || die "reference sweep failed: $(cat "$work/full.out")"
! grep -q '"event":"paused"' "$work"/full/trials/*/attempts.jsonl || die "a trunk paused without halving"

# ---- the halved sweep
"$EXPT" sweep "$work/study.yaml" --out "$work/a" > "$work/a.out" 2>&1 || die "halved sweep failed: $(cat "$work/a.out")"
"$EXPT_PYTHON" - "$work/full" "$work/a" <<'PY' || die "halving: $(cat "$work/a.out")"
import json, math, pathlib, sys
sys.path.insert(0, str(pathlib.Path(sys.argv[0]).parent))
full, a = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ref = {t["id"]: t for t in json.loads((full / "status.json").read_text())["trials"]}
got = {t["id"]: t for t in json.loads((a / "status.json").read_text())["trials"]}
assert set(ref) == set(got), "the halved sweep plans other trials"
loss = {}
for t in ref.values():
    assert t["state"] == "COMPLETED", t
    loss[(t["point"], t["cell"].rsplit("/x", 1)[1])] = t["loss"]
points = sorted({p for p, _ in loss})
rank = lambda r: sorted(points, key=lambda p: loss[(p, r)])
x1, x2, x4 = rank("1"), rank("2"), rank("4")
print("ranking at x1:", x1, " at x4:", x4)
# Whether lr 0.1 escapes chance, and when, depends on the last bits of the products (the AMD EPYC
# Zen 3: last at x1, best at x4; Zen 5: at chance throughout, and lr 0.01, best at x4, loses rung x2
# to lr 0.001 by 0.01), so the rankings are not asserted; the rung rule is, on whatever they are.
# The rung rule on the reference's results (the same bits as the halved sweep's smaller ratios):
# keep ceil(0.34 * 3) = 2 at x1, ceil(0.34 * 2) = 1 at x2.
live2 = x1[:2]
live4 = [p for p in x2 if p in live2][:1]
for tid, t in got.items():
    point, r = t["point"], t["cell"].rsplit("/x", 1)[1]
    live = r == "1" or (r == "2" and point in live2) or (r == "4" and point in live4)
    assert t["state"] == ("COMPLETED" if live else "PRUNED"), (t, live2, live4)
    if live:
        assert t["loss"] == ref[tid]["loss"], (tid, t["loss"], ref[tid]["loss"])
    else:
        want = "pruned at rung x1" if point not in live2 else "pruned at rung x2"
        assert t["role"] == want, t
pruned = [t for t in got.values() if t["state"] == "PRUNED"]
assert len(pruned) == 3, pruned
assert (x4[0] in live4) != any(t["point"] == x4[0] and t["cell"].endswith("/x4") for t in pruned)
print("the x4 winner of the reference", "survived" if x4[0] in live4 else "was pruned (a late winner)")
# status.json's rungs.
rungs = json.loads((a / "status.json").read_text())["halving"]
assert [(g["ratio"], g["decided"], g["kept"]) for g in rungs] == [(1, True, 2), (2, True, 1)], rungs
assert [p["point"] for p in rungs[0]["ranked"]] == x1, rungs[0]
print("pruned:", sorted((t["point"], t["cell"]) for t in pruned))
PY

# Pruned trunks stopped at their rung's fork point and trained no further; each paused once per rung it waited at.
for t in "$work"/a/trials/*/; do
  if grep -q '"event":"paused"' "$t/attempts.jsonl"; then
    step=$("$EXPT_PYTHON" -c "import json,sys; print([json.loads(l) for l in open(sys.argv[1]) if '\"paused\"' in l][-1]['step'])" "$t/attempts.jsonl")
    [[ -d $t/forks/step-$step ]] || die "$(basename "$t") paused at step $step, where it has no fork point"
    # A pause closes its attempt with the CPU time it spent (the trial's cost counts it).
    "$EXPT_PYTHON" -c "import json,sys; assert all(json.loads(l)['cpu_s'] > 0 for l in open(sys.argv[1]) if '\"paused\"' in l)" \
      "$t/attempts.jsonl" || die "$(basename "$t"): a paused event without its cpu_s"
  fi
done
# A PRUNED trunk holds no checkpoint past its last pause (it trained no step beyond its rung's fork point).
"$EXPT_PYTHON" - "$work/a" <<'PY' || die "a pruned trial trained past its rung"
import json, pathlib, sys
a = pathlib.Path(sys.argv[1])
for t in json.loads((a / "status.json").read_text())["trials"]:
    if t["state"] != "PRUNED":
        continue
    d = a / "trials" / t["id"]
    steps = [int(c.name.split("-")[1]) for c in (d / "checkpoints").glob("step-*")] if (d / "checkpoints").is_dir() else []
    paused = [json.loads(l) for l in (d / "attempts.jsonl").read_text().splitlines()
              if '"paused"' in l] if (d / "attempts.jsonl").exists() else []
    if t["cell"].endswith("/x4"):  # a trunk: it paused, at the fork point of the rung that pruned it
        assert paused and max(steps) == paused[-1]["step"], (t, steps, paused)
    else:  # a branch of a pruned point never ran
        assert not steps and not paused, (t, steps)
PY
paused=$(grep -l '"event":"paused"' "$work"/a/trials/*/attempts.jsonl | wc -l)
[[ $paused -eq 3 ]] || die "$paused trunks paused, expected 3 (each waits at x1)"
# The fork events carry the fork step (they read 0 before).
"$EXPT_PYTHON" - "$work/a" <<'PY' || die "fork events"
import json, pathlib, sys
n = 0
for f in pathlib.Path(sys.argv[1]).glob("trials/*/attempts.jsonl"):
    for line in f.read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "fork":
            assert e["step"] == e["from_step"] > 0, e
            n += 1
assert n == 5, n  # x1: 3 branches; x2: the branches of the 2 points x1 kept
PY
"$EXPT" status "$work/a" > "$work/status.out" 2>&1 || die "expt status failed"
grep -q " 3 PRUNED" "$work/status.out" || die "expt status: $(cat "$work/status.out")"
grep -q "\[pruned at rung x1\]" "$work/status.out" || die "expt status roles: $(cat "$work/status.out")"
grep -q "\[trunk\]" "$work/status.out" || die "expt status roles: $(cat "$work/status.out")"
grep -q "\[branch of [0-9a-f]\{16\} from step [0-9]*\]" "$work/status.out" || die "expt status roles: $(cat "$work/status.out")"
grep -q "^halving adamw/s rung x1: kept 2: " "$work/status.out" || die "expt status rungs: $(cat "$work/status.out")"

# Every surviving trial equals its standalone run from scratch.
for t in "$work"/a/trials/*/; do
  id=$(basename "$t")
  [[ -f $t/result.h5 ]] || continue
  "$EXPT" run "$t/trial.yaml" --out "$work/alone/$id" > "$work/alone-$id.out" 2>&1 || die "expt run $id failed"
  "$EXPT_PYTHON" "$scripts/compare_results.py" "$t/result.h5" "$work/alone/$id/result.h5" > "$work/cmp.out" \
    || die "trial $id of the halved sweep differs from its standalone run: $(cat "$work/cmp.out")"
done
[[ $(ls -d "$work"/alone/*/ | wc -l) -eq 6 ]] || die "expected 6 surviving trials"

same_as_a() {  # $1 sweep directory: the same trials and states as the halved sweep, every result bit for bit
  "$EXPT_PYTHON" - "$work/a" "$1" <<'PY' || die "$1 differs from the halved sweep"
import json, pathlib, sys
a, b = (pathlib.Path(p) for p in sys.argv[1:3])
sa = {t["id"]: t["state"] for t in json.loads((a / "status.json").read_text())["trials"]}
sb = {t["id"]: t["state"] for t in json.loads((b / "status.json").read_text())["trials"]}
assert sa == sb, (sa, sb)
PY
  for t in "$1"/trials/*/; do
    id=$(basename "$t")
    [[ -f $t/result.h5 ]] || { [[ ! -f $work/a/trials/$id/result.h5 ]] || die "$1: $id has no result"; continue; }
    "$EXPT_PYTHON" "$scripts/compare_results.py" "$t/result.h5" "$work/a/trials/$id/result.h5" > "$work/cmp.out" \
      || die "$1: trial $id differs: $(cat "$work/cmp.out")"
  done
}

# ---- expt analyze: pruned points never ranked, named in a note, their training in the budget
"$EXPT" analyze "$work/a" > "$work/analyze.out" 2>&1 || die "expt analyze failed: $(cat "$work/analyze.out")"
"$EXPT_PYTHON" - "$work/a" <<'PY' || die "analysis: $(cat "$work/analyze.out")"
import json, pathlib, sys
a = pathlib.Path(sys.argv[1])
an = json.loads((a / "analysis" / "analysis.json").read_text())
status = {t["id"]: t for t in json.loads((a / "status.json").read_text())["trials"]}
cells = {float(c["ratio"]): c for c in an["tables"]["cells"]}
assert len(cells) == 3, cells
for r, c in cells.items():
    live = {t["point"] for t in status.values() if t["cell"] == f"adamw/s/x{r:g}" and t["state"] == "COMPLETED"}
    assert c["best_point"] in live, (r, c["best_point"], live)  # a pruned point is never ranked
assert cells[4.0]["pruned"] == 2 and cells[2.0]["pruned"] == 1, cells
assert any("adamw/s/x4: 2 point(s) pruned by successive halving" in n for n in an["notes"]), an["notes"]
# The budget: finished trials (branches after their fork) and the pruned trunks up to their pause.
budget = sum(r["tokens"] for r in an["tables"]["budget"])
spent = 0
for tid, t in status.items():
    lines = [json.loads(l) for l in (a / "trials" / tid / "attempts.jsonl").read_text().splitlines()] \
        if (a / "trials" / tid / "attempts.jsonl").exists() else []
    fork = [e["from_step"] for e in lines if e["event"] == "fork"]
    if t["state"] == "COMPLETED":
        spent += (t["steps"] - (fork[-1] if fork else 0)) * 8 * 12
    elif t["state"] == "PRUNED":
        paused = [e for e in lines if e["event"] == "paused"]
        spent += paused[-1]["tokens"] if paused else 0
assert budget == spent, (budget, spent)
# ... which is what `expt plan` said halving would train.
plan = float((a.parent / "plan.out.tokens").read_text())
assert budget == plan, (budget, plan)
print("analysis: budget", budget, "tokens")
PY
cp -r "$work/a" "$work/a-copy"
"$EXPT_PYTHON" "$scripts/check_sweep_reader.py" "$work/a" "$work/a-copy" loss@12 > "$work/reader.out" 2>&1 \
  || die "Python reader disagrees with expt analyze: $(cat "$work/reader.out")"

# ---- SIGKILL while a trunk is paused, then while a promoted trunk trains; the same command resumes
slow() {  # the sweep in its own session, slowed down
  EXPT_TEST_STEP_DELAY_MS=5 setsid "$EXPT" sweep "$work/study.yaml" --out "$work/k" >> "$work/k.out" 2>&1 &
  sweep_sid=$!
}
slow
for _ in $(seq 1 1200); do grep -qs '"event":"paused"' "$work"/k/trials/*/attempts.jsonl && break; sleep 0.05; done
grep -qs '"event":"paused"' "$work"/k/trials/*/attempts.jsonl || die "no trunk paused: $(cat "$work/k.out")"
kill_session "$sweep_sid"
slow
promoted() {  # a trunk that started again after a pause (stays true once true)
  for f in "$work"/k/trials/*/attempts.jsonl; do
    "$EXPT_PYTHON" -c "
import json, sys
ev = [json.loads(l)['event'] for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if 'paused' in ev and 'start' in ev[ev.index('paused'):] else 1)" "$f" && return 0
  done
  return 1
}
for _ in $(seq 1 2400); do promoted && break; sleep 0.05; done
promoted || die "no trunk was promoted: $(cat "$work/k.out")"
sleep 0.2
kill_session "$sweep_sid"
"$EXPT" sweep "$work/study.yaml" --out "$work/k" > "$work/k2.out" 2>&1 || die "rerun after kills failed: $(cat "$work/k2.out")"
same_as_a "$work/k"

# ---- two workers on one directory, and mpirun
two_workers "$work/study.yaml" "$work/w" 3
same_as_a "$work/w"
mpirun -np 3 "$EXPT" sweep "$work/study.yaml" --out "$work/m" > "$work/m.out" 2>&1 || die "mpirun sweep failed: $(cat "$work/m.out")"
same_as_a "$work/m"

# ---- lifting the pruning: the PRUNED trials run to completion, equal to the reference
"$EXPT" sweep "$work/study.yaml" --set search.halving.keep=1 --out "$work/a" > "$work/lift.out" 2>&1 \
  || die "lifting failed: $(cat "$work/lift.out")"
for t in "$work"/full/trials/*/; do
  id=$(basename "$t")
  "$EXPT_PYTHON" "$scripts/compare_results.py" "$work/a/trials/$id/result.h5" "$t/result.h5" > "$work/cmp.out" \
    || die "lifted trial $id differs from the reference: $(cat "$work/cmp.out")"
done

# ---- refused without branches, at the key's line and column
sed '/branching: wsd/d' "$work/study.yaml" > "$work/refused.yaml"
set +e
"$EXPT" plan "$work/refused.yaml" > "$work/refused.out" 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || die "expected exit code 2, got $rc: $(cat "$work/refused.out")"
grep -qF "refused.yaml:11:12: search.halving: successive halving compares points at the end of a cooldown" "$work/refused.out" \
  || die "refusal: $(cat "$work/refused.out")"
echo "sweep halving: plan, pruning, bits, kills, workers, mpirun, analysis and lifting as expected"
