#!/usr/bin/env bash
# search.confirm (docs/sweeps.md "Confirmation") on a real coordinate-descent sweep: `expt plan`
# announces the bound on confirmation trials; once a cell converges, exactly its best point and the
# points within the band of it (by the search seed's loss, read back from sweep.h5) run seeds 2 and
# 3, nothing else does; status.json and `expt status` show it; `expt analyze` chooses each cell's
# best on the three seeds and reports their spread and an interval over seeds. Then a sweep killed
# (SIGKILL) while a confirmation trial trains is rerun: no trial is planned twice or run again
# (one `start` per trial but the one killed), and the result equals the uninterrupted sweep's. Two
# `expt worker`s sharing a directory confirm the same trials, each trained once.
source "$(dirname "$0")/lib.sh"

cat > "$work/study.yaml" <<'YAML'
study: confirm
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {lr: 3.0e-3, weight_decay: 0.1}
  schedule: {type: cosine, warmup: 2}
  train: {steps: 40, batch_size: 8, eval_every: 10, eval_batches: 2, checkpoint_every: 10}
search:
  strategy: coordinate_descent
  tolerance: 0.008
  seeds: [1]
  confirm: {seeds: 3, band: tolerance}
  optimizers:
    adamw: {space: {optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]}}
    muon: {base: {lr: 1.0e-2}, space: {optimizer.lr: [3.0e-3, 1.0e-2, 3.0e-2]}}
sweep: {max_attempts: 1}
YAML
study=$work/study.yaml

"$EXPT" plan "$study" > "$work/plan.out" || die "plan failed: $(cat "$work/plan.out")"
# 2 cells x 3 points x 2 extra seeds.
grep -q "^up to 12 confirmation trial(s) (search.confirm).* seed(s) 2, 3;" "$work/plan.out" \
  || die "plan does not announce the confirmation: $(cat "$work/plan.out")"

"$EXPT" sweep "$study" --out "$work/ref" > "$work/ref.out" 2>&1 || die "sweep failed: $(tail -20 "$work/ref.out")"
grep -q "confirmed .* point(s) with 3 seed(s) in all" "$work/ref.out" || die "no confirmation in the summary: $(tail "$work/ref.out")"
"$EXPT" status "$work/ref" > "$work/status.out" || die "status failed"
grep -q "^confirm adamw: [0-9]*/[0-9]* trial(s) done" "$work/status.out" || die "status shows no confirmation: $(cat "$work/status.out")"
"$EXPT" analyze "$work/ref" > "$work/analyze.out" || die "analyze failed: $(cat "$work/analyze.out")"

"$EXPT_PYTHON" - "$work/ref" <<'PY' || die "the confirmed points are not the expected ones"
import json, math, pathlib, sys
import h5py
d = pathlib.Path(sys.argv[1])
with h5py.File(d / "sweep.h5", "r") as f:
    rows = f["trials"][:]
    points = list(f["point"].asstr()[:])
tol = 0.008
by_cell = {}
for r, p in zip(rows, points):
    assert r["status"].decode() == "COMPLETED", r
    by_cell.setdefault(r["cell"].decode(), {}).setdefault(p, {})[int(r["seed"])] = float(r["final_eval_loss"])
status = json.loads((d / "status.json").read_text())
confirm = {c["cell"]: c for c in status["confirmation"]}
analysis = json.loads((d / "analysis" / "analysis.json").read_text())
cells = {c["optimizer"]: c for c in analysis["tables"]["cells"]}
several = left_out = 0
for cell, pts in by_cell.items():
    search = {p: s[1] for p, s in pts.items()}  # every point the search evaluated ran seed 1
    best = min(search.values())
    expected = {p for p, l in search.items() if l == best or l < best + tol}
    confirmed = {p for p, s in pts.items() if set(s) != {1}}
    assert confirmed == expected, (cell, confirmed, expected, search)
    for p in confirmed:
        assert set(pts[p]) == {1, 2, 3}, (cell, p, pts[p])
    several += len(confirmed) >= 2
    left_out += len(confirmed) < len(search)
    c = confirm[cell]
    assert c["ready"] and set(c["points"]) == expected and c["done"] == c["trials"] == 2 * len(expected), c
    # The best: the lowest mean over the three seeds among the confirmed points.
    means = {p: sum(pts[p].values()) / 3 for p in confirmed}
    want = min(sorted(confirmed, key=points.index), key=lambda p: means[p])
    row = cells[cell]
    assert row["best_point"] == want, (row["best_point"], want, means)
    assert math.isclose(row["best_loss"], means[want], rel_tol=1e-9), (row["best_loss"], means[want])
    assert row["seeds"] == 3 and row["ranked_seeds"] == 3, row
    assert row["seed_sd"] is not None and row["seed_sd"] > 0, row
    assert row["ci_method"] == "seeds" and isinstance(row["ci_low"], float) and row["ci_low"] < row["ci_high"], row
    print(f"{cell}: search {search}; confirmed {sorted(confirmed)}; best {want} {means[want]:.4f}")
assert several >= 1 and left_out >= 1, "the band is not exercised: no cell confirms several points and leaves one out"
PY

# ---- SIGKILL while a confirmation trial trains, then rerun ----
EXPT_TEST_STEP_DELAY_MS=40 setsid "$EXPT" sweep "$study" --out "$work/killed" > "$work/killed.out" 2>&1 &
sid=$!
wait_for_file "$work/killed/status.json" 120
victim=""
for _ in $(seq 1 2400); do
  victim=$("$EXPT_PYTHON" - "$work/killed" <<'PY' 2> /dev/null || true
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
s = json.loads((d / "status.json").read_text())
for t in s["trials"]:
    if t["confirmation"] and t["state"] == "running" and list((d / "trials" / t["id"] / "checkpoints").glob("step-*/COMMIT")):
        print(t["id"])
PY
)
  [[ -n $victim ]] && break
  sleep 0.05
done
[[ -n $victim ]] || die "no confirmation trial was seen running with a checkpoint"
kill_session "$sid"
"$EXPT" status "$work/killed" > "$work/killed_status.out" || die "status after the kill failed"
grep -q "^confirm " "$work/killed_status.out" || die "no confirmation line after the kill: $(cat "$work/killed_status.out")"
"$EXPT" sweep "$study" --out "$work/killed" > "$work/rerun.out" 2>&1 || die "rerun failed: $(tail -20 "$work/rerun.out")"

"$EXPT_PYTHON" - "$work/ref" "$work/killed" "$victim" <<'PY' || die "the rerun re-ran or duplicated trials"
import pathlib, sys
import h5py
ref, killed, victim = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
def index(d):
    with h5py.File(d / "sweep.h5", "r") as f:
        return {r["trial_id"].decode(): (r["status"].decode(), float(r["final_eval_loss"])) for r in f["trials"][:]}
a, b = index(ref), index(killed)
assert len(b) == len(a) and set(a) == set(b), (sorted(set(a) ^ set(b)))
assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b[k]}  # bit-exact resume
dirs = {p.name for p in (killed / "trials").iterdir()}
assert dirs == set(b), dirs ^ set(b)
for t in b:
    starts = sum('"start"' in line for line in (killed / "trials" / t / "attempts.jsonl").read_text().splitlines())
    assert starts == (2 if t == victim else 1), (t, starts)
print(f"rerun: {len(b)} trials, the killed confirmation trial {victim} resumed, every other trial ran once")
PY
# ---- two coordinator-free workers share the sweep: the same trials, each trained once ----
"$EXPT" worker "$study" --out "$work/workers" > "$work/w1.out" 2>&1 &
w1=$!
"$EXPT" worker "$study" --out "$work/workers" > "$work/w2.out" 2>&1 &
w2=$!
wait "$w1" || die "worker 1 failed: $(tail -20 "$work/w1.out")"
wait "$w2" || die "worker 2 failed: $(tail -20 "$work/w2.out")"
"$EXPT_PYTHON" - "$work/ref" "$work/workers" <<'PY' || die "the workers' confirmation differs from the sweep's"
import pathlib, sys
import h5py
ref, workers = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def index(d):
    with h5py.File(d / "sweep.h5", "r") as f:
        return {r["trial_id"].decode(): (r["status"].decode(), float(r["final_eval_loss"])) for r in f["trials"][:]}
a, b = index(ref), index(workers)
assert a == b, (sorted(set(a) ^ set(b)), {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)})
for t in b:
    starts = sum('"start"' in line for line in (workers / "trials" / t / "attempts.jsonl").read_text().splitlines())
    assert starts == 1, (t, starts)
print(f"workers: {len(b)} trials, the same as the sweep's, each trained once")
PY
echo "sweep_confirm: ok"
