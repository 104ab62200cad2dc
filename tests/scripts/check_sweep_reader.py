"""The Python reader (analysis/python/sweep_reader.py) agrees with `expt analyze` on a real sweep:
trial counts, states, each cell's best point and loss, the tuning budget; each finished trial's last
eval loss equals its summary; and a trial read from its segments (result.h5 removed, as for a trial
still running) gives the same series as from result.h5.
    check_sweep_reader.py SWEEP_DIR COPY_DIR [EVAL_COLUMN]
    (COPY_DIR: a copy of SWEEP_DIR this script may damage; EVAL_COLUMN: the final eval loss's
    column, default loss@32, the quickstart's)
"""
import json
import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "analysis" / "python"))
from sweep_reader import best_points, load_series, load_trials  # noqa: E402

sweep, copy = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
column = sys.argv[3] if len(sys.argv) > 3 else "loss@32"
analysis = json.loads((sweep / "analysis" / "analysis.json").read_text())
tables = analysis["tables"]
trials = load_trials(sweep)

assert len(trials) == analysis["trials_total"], (len(trials), analysis["trials_total"])
assert int(trials["finished"].sum()) == analysis["trials_finished"]

def spent_tokens(sel):
    """What the sweep trained: a WSD branch counts its steps after the fork, a PRUNED trunk the
    steps up to its last pause (docs/analysis.md)."""
    fin = sel[sel["finished"]]
    pruned = sel[sel["state"] == "PRUNED"]
    return int(sum(t // s * (s - f) if f > 0 else t
                   for t, s, f in zip(fin["summary_tokens_seen"], fin["steps"], fin["fork_step"]))
               + pruned["paused_tokens"].sum())


def spent_wall(sel):
    fin = sel[sel["finished"]]
    pruned = sel[(sel["state"] == "PRUNED") & (sel["paused_tokens"] > 0)]
    return float(sum(w * ((s - f) / s if 0 < f < s else 1.0)
                     for w, s, f in zip(fin["summary_wall_s"], fin["steps"], fin["fork_step"]))
                 + pruned["paused_wall_s"].sum())


def budget_trials(sel):
    return int(sel["finished"].sum() + ((sel["state"] == "PRUNED") & (sel["paused_tokens"] > 0)).sum())


best = best_points(trials, analysis["tolerance"])
cells = {(r["optimizer"], r["model"], r["ratio"]): r for r in tables["cells"]}
assert len(best) == len(cells), (len(best), len(cells))
for _, b in best.iterrows():
    c = cells[(b["optimizer"], b["model_tag"], b["data_ratio"])]
    assert c["best_point"] == b["point"], (c, b)
    assert math.isclose(c["best_loss"], b["loss"], rel_tol=1e-12), (c["best_loss"], b["loss"])
    assert c["seeds"] == b["seeds"]
    assert c["ranked_seeds"] == b["ranked_seeds"]
    sel = trials[trials["cell"] == b["cell"]]
    assert c["completed"] == int((sel["state"] == "COMPLETED").sum())
    assert c["tokens_spent"] == spent_tokens(sel)


for row in tables["budget"]:
    sel = trials[trials["optimizer"] == row["optimizer"]]
    assert row["trials"] == budget_trials(sel), (row, budget_trials(sel))
    assert math.isclose(row["cpu_s"], spent_wall(sel), rel_tol=1e-12), row
    assert row["tokens"] == spent_tokens(sel)

evals = load_series(sweep, "eval")
# A PRUNED trunk (search.halving) has no result.h5: its rows come from its segments.
assert set(evals[evals["state"] != "PRUNED"]["source"]) == {"result"}
for _, t in trials[trials["state"] == "COMPLETED"].iterrows():
    e = evals[(evals["trial_id"] == t["trial_id"]) & (evals["metric"] == column)].sort_values("step")
    assert math.isclose(float(e["value"].iloc[-1]), t["summary_final_eval_loss"], rel_tol=1e-6), t["trial_id"]

# Segments path: remove result.h5 of two trials in the copy; the sweep.h5 states stay, so the
# reader must fall back to the segments (as for a running trial) and find the same rows.
victims = list(trials[trials["state"] == "COMPLETED"]["trial_id"][:2])
for v in victims:
    segs = sorted((copy / "trials" / v / "metrics").glob("seg-*.h5"))
    assert len(segs) >= 2, f"{v}: {len(segs)} segment(s); the test wants several"
    (copy / "trials" / v / "result.h5").unlink()
for stream in ("eval", "train"):
    a = load_series(sweep, stream)
    b = load_series(copy, stream)
    for v in victims:
        x = a[a["trial_id"] == v].drop(columns="source").reset_index(drop=True)
        y = b[b["trial_id"] == v]
        assert set(y["source"]) == {"segments"}, set(y["source"])
        y = y.drop(columns="source").reset_index(drop=True)
        assert x.equals(y), (stream, v, x.compare(y))
print(f"check_sweep_reader: {len(trials)} trials, {len(best)} cells agree with expt analyze; "
      f"segments fallback equals result.h5 for {len(victims)} trials")
