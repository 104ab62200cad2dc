#!/usr/bin/python3
"""Figures of a sweep (docs/analysis.md, "Plots"): PNG and SVG under DIR/analysis/plots/.

    /usr/bin/python3 analysis/python/plot_sweep.py runs/quickstart_study

  loss_curves     the metric against tokens of each cell's best point, one panel per model size
  final_loss      the best point's final metric against data ratio, one line per optimizer (and
                  compared value), one panel per model, with every seed's value as a dot
  speedup         D_eff against D with the 1-1.2x, 1.2-1.3x, 1.3-1.4x bands, per model size, with
                  the bootstrap interval as error bars; squares are extrapolations (from
                  DIR/analysis/analysis.json: run `expt analyze DIR` first; without it this figure
                  is skipped and says so)
  lr_sensitivity  final metric against learning rate per optimizer (the best over the other axes
                  at each learning rate), one line per cell; diverged points marked at the top

The metric is the one `expt analyze` last used (analysis.json "metric"; `--metric` overrides it):
any eval column, ranked as the analysis ranks it (an accuracy, a name holding "acc", is higher is
better).

Prints the path of every file written. Works on a sweep that is still running.
"""

import argparse
import json
import math
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from sweep_reader import best_points, load_series, load_trials, study_tolerance  # noqa: E402


def save(fig, out_dir, stem, written):
    for ext in ("png", "svg"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)
    plt.close(fig)


def panels(n):
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    return fig, axes[0]


def colours(names):
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


class Metric:
    """An eval column ranked as `expt analyze` ranks it: `ranked` is the column, or 1 - the column
    for an accuracy, lower is better."""

    def __init__(self, name, higher_is_better):
        self.name, self.higher = name, higher_is_better

    def column(self, names):
        """The eval column of the metric among `names` (exact, else the first <name>@<length>)."""
        names = sorted(set(names))
        exact = [n for n in names if n == self.name]
        at = [n for n in names if n.startswith(self.name + "@")]
        return (exact or at or [None])[0]

    def shown(self, ranked):
        return 1 - ranked if self.higher else ranked


def metric_of(sweep_dir, name):
    if name is None:
        path = sweep_dir / "analysis" / "analysis.json"
        name = json.loads(path.read_text()).get("metric", "loss") if path.exists() else "loss"
    return Metric(name, "acc" in name)


def with_metric(trials, evals, metric):
    """The trials with `loss` replaced by the metric's ranked value: the last eval row's value of a
    COMPLETED trial, +inf otherwise (as the analysis ranks)."""
    if metric.name == "loss" or evals.empty:
        return trials
    column = metric.column(evals["metric"])
    last = evals[evals["metric"] == column].sort_values("step").groupby("trial_id")["value"].last()
    ranked = [metric.shown(float(last[t])) if (s == "COMPLETED" and t in last.index) else math.inf
              for t, s in zip(trials["trial_id"], trials["state"])]
    return trials.assign(loss=ranked)


def series(cell):
    """A cell's line: its name without the model and ratio (optimizer, and compared values)."""
    parts = cell.split("/")
    return "/".join(parts[:-2]) if len(parts) >= 3 and parts[-1].startswith("x") else cell


def plot_loss_curves(trials, evals, metric, tolerance, out_dir, written):
    best = best_points(trials, tolerance)
    if best.empty or evals.empty:
        return
    models = list(dict.fromkeys(best["model_tag"]))
    colour = colours(list(dict.fromkeys(best["optimizer"])))
    ratios = sorted(set(best["data_ratio"]))
    styles = ["-", "--", ":", "-."]
    fig, axes = panels(len(models))
    for ax, model in zip(axes, models):
        for _, b in best[best["model_tag"] == model].iterrows():
            sel = evals[(evals["cell"] == b["cell"]) & (evals["point"] == b["point"])]
            column = metric.column(sel["metric"])
            if column is None:
                continue
            curve = sel[sel["metric"] == column].groupby("tokens")["value"].mean()
            style = styles[ratios.index(b["data_ratio"]) % len(styles)]
            ax.plot(curve.index, curve.values, style, color=colour[b["optimizer"]],
                    label=f"{series(b['cell'])} x{b['data_ratio']:g}")
        ax.set_title(f"model {model}: best config per cell")
        ax.set_xlabel("tokens")
        ax.set_ylabel(f"eval {metric.name} (mean over seeds)")
        ax.legend(fontsize=7)
    save(fig, out_dir, "loss_curves", written)


def plot_final_loss(trials, metric, tolerance, out_dir, written):
    best = best_points(trials, tolerance)
    best = best[best["data_ratio"] > 0]
    if best.empty:
        return
    best = best.assign(series=best["cell"].map(series))
    done = trials[trials["finished"]]
    models = list(dict.fromkeys(best["model_tag"]))
    colour = colours(list(dict.fromkeys(best["series"])))
    fig, axes = panels(len(models))
    for ax, model in zip(axes, models):
        for name, group in best[best["model_tag"] == model].groupby("series", sort=False):
            group = group.sort_values("data_ratio")
            finite = group[np.isfinite(group["loss"])]
            ax.plot(finite["data_ratio"], metric.shown(finite["loss"]), "o-", color=colour[name], label=name)
            # Every seed of each best point: a spread (or two modes) shows here, not in the mean.
            for _, b in finite.iterrows():
                seeds = done[(done["cell"] == b["cell"]) & (done["point"] == b["point"])]
                seeds = seeds[np.isfinite(seeds["loss"])]
                ax.plot([b["data_ratio"]] * len(seeds), metric.shown(seeds["loss"]), ".", color=colour[name],
                        alpha=0.5, ms=5)
        ax.set_xscale("log", base=2)
        ax.set_title(f"model {model} (dots: each seed)")
        ax.set_xlabel("data ratio (x tokens_per_param)")
        ax.set_ylabel(f"best final eval {metric.name}")
        ax.legend(fontsize=8)
    save(fig, out_dir, "final_loss", written)


def plot_speedup(sweep_dir, out_dir, written):
    path = sweep_dir / "analysis" / "analysis.json"
    if not path.exists():
        print(f"plot_sweep: {path} not found; run `expt analyze {sweep_dir}` for the speedup figure",
              file=sys.stderr)
        return
    analysis = json.loads(path.read_text())
    rows = [r for r in analysis["tables"].get("speedup", []) if r["D_eff"] is not None and r["D"] is not None]
    if not rows:
        return
    def name(r):
        return r["optimizer"] + (f" ({r['compare']})" if r.get("compare") else "")

    models = list(dict.fromkeys(r["model"] for r in rows))
    colour = colours(list(dict.fromkeys(name(r) for r in rows)))
    fig, axes = panels(len(models))
    for ax, model in zip(axes, models):
        mine = [r for r in rows if r["model"] == model]
        ds = [r["D"] for r in mine]
        lo, hi = min(ds) / 1.5, max(ds) * 1.5
        x = np.geomspace(lo, hi, 50)
        ax.plot(x, x, "k-", lw=0.8, label="1x")
        for (a, b), alpha in (((1.0, 1.2), 0.10), ((1.2, 1.3), 0.18), ((1.3, 1.4), 0.26)):
            ax.fill_between(x, a * x, b * x, color="tab:green", alpha=alpha, lw=0, label=f"{a:g}-{b:g}x")
        finite_top = max([r["D_eff"] for r in mine if r["D_eff"] != "inf"] + [hi])
        for r in mine:
            c = colour[name(r)]
            if r["D_eff"] == "inf":  # beyond the fit: no finite D_eff, drawn as an arrow at the top
                ax.plot(r["D"], finite_top * 1.3, "^", color=c, ms=9)
                continue
            err = None
            # A zero-width interval is text ("n/a (one point)"): no error bar.
            if isinstance(r["ci_low"], (int, float)) and r["ci_high"] is not None:
                low = r["D"] * r["ci_low"]
                high = r["D"] * r["ci_high"] if r["ci_high"] != "inf" else finite_top * 1.3
                err = [[max(r["D_eff"] - low, 0)], [max(high - r["D_eff"], 0)]]
            marker = "s" if r.get("extrapolated") == "yes" else "o"
            ax.errorbar([r["D"]], [r["D_eff"]], yerr=err, fmt=marker, color=c, capsize=3)
        for opt, c in colour.items():
            ax.plot([], [], "o", color=c, label=opt)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"model {model}: D_eff vs D")
        ax.set_xlabel("D (tokens)")
        ax.set_ylabel("D_eff (tokens)")
        ax.legend(fontsize=7)
    # One line for both panels: per-panel titles this long overlap when the panels sit side by side.
    fig.suptitle(f"D_eff from the {analysis['baseline']} fit per model; squares: extrapolated", fontsize=10)
    save(fig, out_dir, "speedup", written)


def learning_rates(trials):
    """Each trial's learning rate: its typed axis value (sweep.h5 /axes) where its cell searches the
    learning rate, else the value in its result.h5 /hparams."""
    lr = trials["axis_optimizer.lr"] if "axis_optimizer.lr" in trials.columns else None
    if "optimizer.lr" in trials.columns:
        lr = trials["optimizer.lr"] if lr is None else lr.fillna(trials["optimizer.lr"])
    return lr


def plot_lr_sensitivity(trials, metric, out_dir, written):
    done = trials[trials["finished"]]
    lr = learning_rates(done)
    if done.empty or lr is None:
        return
    done = done.assign(lr=lr.astype(float))
    optimizers = list(dict.fromkeys(done["optimizer"]))
    fig, axes = panels(len(optimizers))
    for ax, opt in zip(axes, optimizers):
        sel = done[done["optimizer"] == opt]
        finite = sel[np.isfinite(sel["loss"])]
        top = finite["loss"].max() if not finite.empty else 1.0
        for cell, group in sel.groupby("cell", sort=False):
            # Mean over seeds per point, then the best point at each learning rate.
            per_point = group.groupby("point", sort=False).agg(
                lr=("lr", "first"),
                loss=("loss", lambda s: math.inf if not np.all(np.isfinite(s)) else float(np.mean(s))))
            per_lr = per_point.groupby("lr")["loss"].min().sort_index()
            ok = per_lr[np.isfinite(per_lr.values)]
            line = ax.plot(ok.index, metric.shown(ok.values), "o-", label=cell)
            bad = per_lr[~np.isfinite(per_lr.values)]
            if len(bad):
                ax.plot(bad.index, [metric.shown(top) * 1.02] * len(bad), "x", color=line[0].get_color(), ms=8)
        ax.set_xscale("log")
        ax.set_title(f"{opt}: learning-rate sensitivity (x: diverged)")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"final eval {metric.name} (best over other axes)")
        ax.legend(fontsize=6)
    save(fig, out_dir, "lr_sensitivity", written)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", help="sweep output directory")
    parser.add_argument("--out", help="output folder (default DIR/analysis/plots)")
    parser.add_argument("--metric", help="eval column (default: the one of DIR/analysis/analysis.json, else loss)")
    args = parser.parse_args()
    sweep_dir = pathlib.Path(args.dir)
    out_dir = pathlib.Path(args.out) if args.out else sweep_dir / "analysis" / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = load_trials(sweep_dir)
    unfinished = int((~trials["finished"]).sum())
    if unfinished:
        print(f"plot_sweep: {unfinished} of {len(trials)} trials not finished; plotting the finished ones",
              file=sys.stderr)
    evals = load_series(sweep_dir, "eval")
    metric = metric_of(sweep_dir, args.metric)
    trials = with_metric(trials, evals, metric)
    written = []
    tolerance = study_tolerance(sweep_dir)
    plot_loss_curves(trials, evals, metric, tolerance, out_dir, written)
    plot_final_loss(trials, metric, tolerance, out_dir, written)
    plot_speedup(sweep_dir, out_dir, written)
    plot_lr_sensitivity(trials, metric, out_dir, written)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
