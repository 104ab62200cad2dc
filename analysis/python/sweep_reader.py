"""Reader for `expt sweep` directories, on h5py and pandas only (docs/analysis.md, "Python").

    import sys; sys.path.insert(0, "analysis/python")
    from sweep_reader import load_trials, load_series
    trials = load_trials("runs/quickstart_study")          # one row per trial
    evals = load_series("runs/quickstart_study", "eval")   # long table: one row per (trial, step, metric)

The coordinator's index sweep.h5 lists every planned trial with its cell, seed and state (/trials),
its point's label (/point) and value on every search axis as a typed column (/axes); it is replaced
by rename, so reading it while the sweep runs is safe. A finished trial's
metrics come from trials/<id>/result.h5; a trial still running (or without result.h5) is read from
its metrics segments with the consolidation rule of docs/results-format.md, skipping a segment that
is being written and will not open.
"""

import json
import math
import pathlib
import re

import h5py
import numpy as np
import pandas as pd

FINISHED = ("COMPLETED", "DIVERGED", "FAILED")
_SEGMENT = re.compile(r"^seg-([1-9][0-9]*)-(0|[1-9][0-9]*)\.h5$")


def _text(value):
    """Fixed-length HDF5 strings come back as bytes (or numpy.bytes_); decode them."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    return value


def _scalar(value):
    value = _text(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_trials(sweep_dir):
    """One row per planned trial.

    Columns: trial_id, optimizer, seed, cell, model_tag, data_ratio, point (the label, axis values
    as written), axis_<key> for every search axis (float, int or str as the trial key takes it;
    None where the trial's cell does not search that axis), state (pending, running, COMPLETED,
    DIVERGED, FAILED as the coordinator last wrote it), steps (planned), n_attempts, finished
    (bool), loss (the final eval loss as the analysis ranks it: +inf unless COMPLETED), one column
    per hyperparameter of /hparams (e.g. "optimizer.lr"), the /summary attributes of result.h5
    as summary_<name> (NaN/None when the trial has no result.h5 yet), and fork_step: for a WSD
    branch the trunk step it started from (its first fork_step steps were trained once by the trunk;
    `expt analyze`'s budget counts only the rest), else 0. With search.halving a trial may be PRUNED
    (its point lost a rung: never ranked, never run again); paused_tokens and paused_wall_s are the
    tokens and wall time of its last pause at a rung's fork point (attempts.jsonl "paused"; 0 when it
    never paused): what a pruned trunk trained, counted in `expt analyze`'s budget.
    """
    sweep_dir = pathlib.Path(sweep_dir)
    index = sweep_dir / "sweep.h5"
    if not index.exists():
        raise FileNotFoundError(f"{index} not found: {sweep_dir} is not a sweep directory")
    with h5py.File(index, "r") as f:
        if "axes" not in f:
            raise ValueError(f"{index} was written by an older expt (no /axes); run the sweep's `expt sweep` "
                             "command again to rewrite it (finished trials are kept)")
        table = f["trials"][:]
        points = list(f["point"].asstr()[:])
        axes = {}
        for key in f["axis_keys"].asstr()[:]:
            column = f["axes"][key]
            value = column["value"]
            values = value.asstr()[:] if h5py.check_string_dtype(value.dtype) else value[:]
            axes["axis_" + key] = (values, column["present"][:].astype(bool))
    rows = []
    for i, rec in enumerate(table):
        row = {name: _scalar(rec[name]) for name in table.dtype.names}
        row["point"] = points[i]
        for name, (values, present) in axes.items():
            row[name] = _scalar(values[i]) if present[i] else None
        row["state"] = row.pop("status")
        row.pop("final_eval_loss")  # the index's copy; the summary below is the trial's own
        row.pop("tokens")
        row["finished"] = row["state"] in FINISHED
        result = sweep_dir / "trials" / row["trial_id"] / "result.h5"
        row["fork_step"] = _fork_step(sweep_dir / "trials" / row["trial_id"] / "attempts.jsonl")
        paused = _last_event(sweep_dir / "trials" / row["trial_id"] / "attempts.jsonl", "paused")
        row["paused_tokens"] = paused.get("tokens", 0) if isinstance(paused.get("tokens"), int) else 0
        row["paused_wall_s"] = float(paused["wall_s"]) if isinstance(paused.get("wall_s"), (int, float)) else 0.0
        row["loss"] = math.inf
        if result.exists():
            try:
                with h5py.File(result, "r") as r:
                    for key, value in r["hparams"].attrs.items():
                        row[key] = _scalar(value)
                    for key, value in r["summary"].attrs.items():
                        row["summary_" + key] = _scalar(value)
            except (OSError, KeyError):
                pass  # damaged, or written by an older writer: the trial is read as having no result
        if row["state"] == "COMPLETED" and math.isfinite(row.get("summary_final_eval_loss", math.inf)):
            row["loss"] = row["summary_final_eval_loss"]
        rows.append(row)
    return pd.DataFrame(rows)


def _fork_step(attempts):
    """from_step of the last "fork" line of a trial's attempts.jsonl (0: never forked)."""
    step = _last_event(attempts, "fork").get("from_step")
    return step if isinstance(step, int) else 0


def _last_event(attempts, name):
    """The last line of a trial's attempts.jsonl whose event is `name` ({} when none)."""
    last = {}
    if attempts.exists():
        for line in attempts.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn last line of a killed writer
            if isinstance(event, dict) and event.get("event") == name:
                last = event
    return last


def _segments(trial_dir):
    """(attempt, first_step, path) of every well-named segment, in consolidation order."""
    out = []
    metrics = trial_dir / "metrics"
    if metrics.is_dir():
        for p in metrics.iterdir():
            m = _SEGMENT.match(p.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(out)


def _read_stream(path, stream):
    with h5py.File(path, "r") as f:
        name = "metrics/" + stream
        if name not in f:
            return None
        return pd.DataFrame(f[name][:])


def _consolidated(trial_dir, stream):
    """The segments' rows under the rule: a row of segment s is kept iff its step is below the
    first_step of every later segment (docs/results-format.md), unreadable segments included."""
    segs = _segments(trial_dir)
    frames = []
    for i, (_, _, path) in enumerate(segs):
        cutoff = min((s[1] for s in segs[i + 1:]), default=math.inf)
        try:
            df = _read_stream(path, stream)
        except (OSError, KeyError, ValueError):
            continue  # open for writing by a running trial (locked or half written), or damaged
        if df is None or df.empty:
            continue
        frames.append(df[df["step"] < cutoff])
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def load_series(sweep_dir, stream="eval"):
    """Long table of one metrics stream ("train", "eval" or "events") of every trial.

    Columns: trial_id, optimizer, cell, model_tag, data_ratio, point, seed, state, source ("result"
    or "segments"), step, tokens, wall_s, metric, value. Eval metrics keep their names ("loss@64").
    """
    sweep_dir = pathlib.Path(sweep_dir)
    trials = load_trials(sweep_dir)
    keys = ["trial_id", "optimizer", "cell", "model_tag", "data_ratio", "point", "seed", "state"]
    frames = []
    for _, t in trials.iterrows():
        trial_dir = sweep_dir / "trials" / t["trial_id"]
        result = trial_dir / "result.h5"
        df, source = None, "result"
        if t["finished"] and result.exists():
            try:
                df = _read_stream(result, stream)
            except OSError:
                df = None
        if df is None:
            df, source = _consolidated(trial_dir, stream), "segments"
        if df is None or df.empty:
            continue
        for col in df.columns:
            if df[col].dtype.kind == "S":
                df[col] = df[col].map(_text)
        ids = [c for c in ("step", "tokens", "wall_s") if c in df.columns]
        long = df.melt(id_vars=ids, var_name="metric", value_name="value")
        for k in keys:
            long[k] = t[k]
        long["source"] = source
        frames.append(long)
    columns = keys + ["source", "step", "tokens", "wall_s", "metric", "value"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    return out[[c for c in columns if c in out.columns]]


def study_tolerance(sweep_dir):
    """The study's near-best band (search.tolerance in sweep.h5's resolved study; 0.003 when it has
    none, as for grid and Halton), the default of `expt analyze --tolerance`."""
    with h5py.File(pathlib.Path(sweep_dir) / "sweep.h5", "r") as f:
        config = f["config"].asstr()[()] if "config" in f else ""
    m = re.search(r"^  tolerance: (\S+)$", config, re.MULTILINE)
    return float(m.group(1)) if m else 3e-3


def best_points(trials, tolerance=3e-3):
    """Per cell, the best point as `expt analyze` chooses it (docs/analysis.md "Points with more
    seeds"): every point's mean over the seeds all the cell's points share gives the best loss L*
    and the near-best set B (below L* + tolerance); the best is the point of B with the lowest mean
    over the seeds every point of B shares (ties: the first in plan order). `loss` is the mean over
    all of its seeds; a DIVERGED or FAILED seed makes a mean +inf."""
    def mean(values):
        return math.inf if len(values) == 0 or not np.all(np.isfinite(values)) else float(np.mean(values))

    done = trials[trials["finished"]]
    rows = []
    for cell, group in done.groupby("cell", sort=False):
        by_point = {p: g.set_index("seed")["loss"] for p, g in group.groupby("point", sort=False)}
        names = list(by_point)

        def shared(which):
            return set.intersection(*(set(by_point[p].index) for p in which))

        def mean_on(p, seeds):
            own = by_point[p]
            picked = own[own.index.isin(seeds)]
            return mean(picked.values) if len(picked) else mean(own.values)

        common = shared(names)
        on_common = {p: mean_on(p, common) for p in names}
        first = min(names, key=lambda p: (on_common[p], names.index(p)))
        band = [p for p in names if p == first
                or (math.isfinite(on_common[p]) and on_common[p] < on_common[first] + tolerance)]
        band_seeds = shared(band)
        best = min(band, key=lambda p: (mean_on(p, band_seeds), names.index(p)))
        first_row = group.iloc[0]
        rows.append({"cell": cell, "optimizer": first_row["optimizer"], "model_tag": first_row["model_tag"],
                     "data_ratio": first_row["data_ratio"], "point": best, "loss": mean(by_point[best].values),
                     "seeds": len(by_point[best]), "ranked_seeds": len(band_seeds)})
    return pd.DataFrame(rows)
