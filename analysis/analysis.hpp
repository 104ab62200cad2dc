// What `expt analyze` computes from a sweep (docs/analysis.md), as structured results a caller
// can render (analysis/report.hpp) or use directly:
//   - per cell (optimizer, compared values, model size, data ratio): what its trials ran, the best
//     point and its value of the metric (mean over the seeds finished, with every seed's value and
//     their spread, and a bootstrap interval), the near-best set (points below best + tolerance),
//     a one-at-a-time ablation around the best, state counts, grid-edge warnings and the tuning
//     budget spent;
//   - per (compared values, model size), the AdamW (baseline) fit L(D) = alpha D^-B + beta with
//     its degrees of freedom and residuals, and D_eff and speedup = D_eff / D of every cell at a
//     ratio the baseline ran, with a bootstrap interval, in tokens, compute and wall-clock;
//   - optionally (target given), steps and tokens to the target with a one-sided z-test on the
//     measured seed spread.
// Only finished trials count (COMPLETED, DIVERGED, FAILED after its last attempt); a DIVERGED or
// FAILED trial has loss +inf, so a point holding one ranks last.
//
// The metric (--metric): any eval column. Every `loss` below is the ranked quantity, lower is
// better: the column itself, or 1 - value for an accuracy (a column whose name holds "acc"), so
// the fit and the speedups of an accuracy are those of its error rate. Metric::value turns a
// ranked quantity back into the column's value for display.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "analysis/power_law_fit.hpp"
#include "analysis/sweep_reader.hpp"

namespace expt::analysis {

struct Metric {
  std::string name = "loss";  // as given: "loss", "token_acc", or a whole column "seq_acc@32"
  bool higher_is_better = false;
  double ranked(double value) const { return higher_is_better ? 1 - value : value; }
  double value(double ranked_value) const { return higher_is_better ? 1 - ranked_value : ranked_value; }
};
Metric metric_named(const std::string& name);  // higher_is_better when the name holds "acc"

struct AnalysisOptions {
  std::string metric = "loss";      // eval column (or its name before '@<length>') ranked and reported
  std::optional<double> tolerance;  // near-best band; default: the study's search.tolerance
  std::string baseline = "adamw";   // the optimizer whose fit defines D_eff
  int bootstrap_samples = 1000;     // replicates of the speedup interval
  double confidence = 0.95;         // two-sided level of the interval
  std::optional<double> target;     // steps-to-target mode
  double sigma = 0.0013;            // z-test: noise of one run's final value when a point has one seed
  double alpha_test = 0.001;        // z-test: one-sided significance level
};

// A point of a cell: one value per axis, its trials over seeds.
struct PointResult {
  std::string point;                                        // label (sweep.h5 /point)
  std::vector<std::pair<std::string, io::AxisValue>> axes;  // its typed values
  std::vector<double> seed_losses;                          // finished trials, +inf for DIVERGED / FAILED
  std::vector<std::int64_t> seeds;                          // the seed of each
  std::vector<double> wall_s;                               // the wall time of each (0: unknown)
  std::vector<double> step_cpu_s;  // CPU-seconds of its training steps (median step x steps x ranks; 0: unknown)
  double loss = 0;                 // mean of seed_losses (+inf when any is +inf)
  double tokens = 0;               // tokens trained by one of its COMPLETED trials (0 if none)
};

// Spread of a point's seeds (finite values only; sd is the sample standard deviation, 0 with one).
struct SeedSpread {
  int n = 0;
  double sd = 0, min = 0, max = 0;
};
SeedSpread seed_spread(const std::vector<double>& losses);

// A percentile bootstrap interval and how it was drawn.
struct Interval {
  double low = 0, high = 0;
  std::string method;  // "seeds", "near-best", "seeds+near-best"
  int replicates = 0;  // replicates that gave a value (0: no interval)
  // Why there is no interval of positive width: "n/a (one point)" when every resampled set was one
  // point, "n/a (seeds equal)" when seeds gave identical values; empty for a real interval.
  std::string degenerate;
};

struct AblationRow {
  std::string axis, value, point;
  double loss = 0, delta = 0;  // delta = loss - best loss
};

struct CellResult {
  CellInfo info;
  // What its finished trials ran, on the label keys: "model.mixer.type=gla"; a key on which they
  // differ shows every value ("gla|deltanet") and sets `mixed`.
  std::string ran;
  bool mixed = false;
  int completed = 0, diverged = 0, failed = 0, pending = 0, running = 0;
  // Trials per state as sweep.h5 names it, any state (a state a newer coordinator adds gets its
  // own column in the cells table).
  std::map<std::string, int> state_counts;
  int trials_finished = 0;
  int pruned = 0;          // PRUNED trials (search.halving): never ranked
  int pruned_trained = 0;  // of which trained some steps (a trunk paused at its rung's fork point)
  // Sums over finished trials and the steps PRUNED trials trained: wall_s * ranks_per_trial (a
  // branch: its own share), tokens trained (a branch: after its fork).
  double cpu_s = 0;
  std::int64_t tokens_spent = 0;
  bool has_best = false;  // some point finished
  PointResult best;
  // The seeds the best was chosen on: those every near-best point has (docs/analysis.md "Points
  // with more seeds"); best.loss is still the mean over all of the best point's seeds.
  std::vector<std::int64_t> ranked_seeds;
  std::vector<std::string> near_best;  // points with loss < best + tolerance, best first
  std::vector<PointResult> near_best_points;
  std::vector<AblationRow> ablation;
  std::vector<std::string> edge_warnings;  // "optimizer.lr=1.6e-2 at the upper edge"
  Interval best_interval;                  // of best.loss
};

struct FitResult {
  std::string compare;  // the compared values of the group ("" without compare)
  std::string model_tag;
  std::vector<std::string> cells;       // baseline cells used, in D order
  std::vector<double> ratios, d, loss;  // their data ratio, tokens and best loss
  PowerLawFit fit;
  int degrees_of_freedom = 0;  // points - 3 parameters
  // As many points as parameters and the curve passes through them: the residuals are zero by
  // construction and are not shown. (With 0 degrees of freedom and no curve through the points,
  // the least-squares compromise's residuals show the misfit.)
  bool interpolation = false;
};

struct SpeedupRow {
  std::string optimizer, compare, model_tag, cell;
  double data_ratio = 0, d = 0, loss = 0;  // loss NaN when the cell has no finished trial
  bool available = false;                  // false: no fit, no baseline cell at this ratio, or no finite best loss
  std::string flag;                        // "", "extrapolated ...", "beyond fit: L <= beta", or why unavailable
  bool extrapolated = false;               // D_eff outside the fitted range of D (or beyond the asymptote)
  double d_eff = 0, speedup = 0;           // d_eff +inf when beyond the fit
  double ci_low = 0, ci_high = 0;          // bootstrap percentile interval of the speedup
  std::string ci_method;                   // "seeds", "near-best", "seeds+near-best"
  int ci_replicates = 0;                   // replicates whose fit succeeded
  std::string ci_degenerate;               // as Interval::degenerate
  // The same speedup in cost: the baseline's cost of D_eff tokens (a line a + b D through its
  // fitted cells' costs) over this cell's cost (mean over the best point's seeds). Compute:
  // CPU-seconds of training steps; wall-clock: the trials' wall time (evals, checkpoints and
  // start-up included). NaN when a cost was not recorded; +inf when D_eff is.
  double compute_speedup = 0, wall_speedup = 0;
};

struct TargetRow {
  std::string optimizer, model_tag, cell, point;
  double data_ratio = 0;
  int seeds = 0;
  bool reached = false;  // the seed-mean eval loss reached the target at some eval
  std::int64_t steps_to_target = -1, tokens_to_target = -1;
  double mean_final = 0, z = 0, p_value = 1;
  double sigma = 0;          // of the z-test
  std::string sigma_source;  // "seeds" (the point's sample standard deviation) or "--sigma" (one seed)
  bool significant = false;  // p < alpha_test
};

struct BudgetRow {
  std::string optimizer;
  int trials = 0;
  double cpu_s = 0;
  std::int64_t tokens = 0;
};

struct Analysis {
  std::string study, strategy, dir;
  std::string expt_commit;         // of the binary that analysed (io::build_git_sha)
  std::int64_t config_schema = 0;  // of the trial ids (sweep.h5)
  double tolerance = 0;
  AnalysisOptions options;
  Metric metric;
  int trials_total = 0, trials_finished = 0;
  int trials_pruned = 0;  // search.halving: PRUNED, never to run (not analysed, counted in the budget)
  bool partial = false;   // some trial is pending or running
  // partial, and a fresh heartbeat says a sweep process is alive (or the directory predates
  // heartbeats and cannot tell): the summary may say "still running" only then.
  bool running = false;
  std::vector<std::string> notes;
  std::vector<CellResult> cells;
  std::vector<FitResult> fits;
  std::vector<SpeedupRow> speedups;
  std::vector<BudgetRow> budget;
  std::vector<TargetRow> targets;
};

// Throws std::runtime_error when the metric is not an eval column of a finished trial.
Analysis analyze(const SweepData& sweep, const AnalysisOptions& options);

// Percentile of sorted values (linear interpolation between order statistics); +inf entries sort last.
double percentile(const std::vector<double>& sorted, double q);

}  // namespace expt::analysis
