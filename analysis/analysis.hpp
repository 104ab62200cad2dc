// What `expt analyze` computes from a sweep (docs/analysis.md):
//   - per cell (optimizer, model size, data ratio): the best point and its final loss (mean over
//     the seeds finished), the near-best set (points below best + tolerance), a one-at-a-time
//     ablation around the best, state counts, grid-edge warnings and the tuning budget spent;
//   - per model size, the AdamW (baseline) fit L(D) = alpha D^-B + beta with its residuals, and
//     D_eff and speedup = D_eff / D of every cell, with a bootstrap confidence interval;
//   - optionally (target loss given), steps and tokens to the target with a one-sided z-test.
// Only finished trials count (COMPLETED, DIVERGED, FAILED after its last attempt); a DIVERGED or
// FAILED trial has loss +inf, so a point holding one ranks last.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/power_law_fit.hpp"
#include "analysis/sweep_reader.hpp"

namespace expt::analysis {

struct AnalysisOptions {
  std::optional<double> tolerance;  // near-best band; default: the study's search.tolerance
  std::string baseline = "adamw";   // the optimizer whose fit defines D_eff
  int bootstrap_samples = 1000;     // replicates of the speedup interval
  double confidence = 0.95;         // two-sided level of the interval
  std::optional<double> target;     // steps-to-target mode
  double sigma = 0.0013;            // z-test: noise of one run's final loss (modded-nanogpt)
  double alpha_test = 0.001;        // z-test: one-sided significance level
};

// A point of a cell: one value per axis, its trials over seeds.
struct PointResult {
  std::string point;                                        // label (sweep.h5 /point)
  std::vector<std::pair<std::string, io::AxisValue>> axes;  // its typed values
  std::vector<double> seed_losses;                          // finished trials, +inf for DIVERGED / FAILED
  double loss = 0;                                          // mean of seed_losses (+inf when any is +inf)
  double tokens = 0;                                        // tokens trained by one of its COMPLETED trials (0 if none)
};

struct AblationRow {
  std::string axis, value, point;
  double loss = 0, delta = 0;  // delta = loss - best loss
};

struct CellResult {
  CellInfo info;
  int completed = 0, diverged = 0, failed = 0, pending = 0, running = 0;
  int trials_finished = 0;
  double cpu_s = 0;               // sum over finished trials of wall_s * ranks_per_trial
  std::int64_t tokens_spent = 0;  // sum over finished trials of tokens trained
  bool has_best = false;          // some point finished
  PointResult best;
  std::vector<std::string> near_best;  // points with loss < best + tolerance, best first
  std::vector<PointResult> near_best_points;
  std::vector<AblationRow> ablation;
  std::vector<std::string> edge_warnings;  // "optimizer.lr=1.6e-2 at the upper edge"
};

struct FitResult {
  std::string model_tag;
  std::vector<std::string> cells;       // baseline cells used, in D order
  std::vector<double> ratios, d, loss;  // their data ratio, tokens and best loss
  PowerLawFit fit;
};

struct SpeedupRow {
  std::string optimizer, model_tag, cell;
  double data_ratio = 0, d = 0, loss = 0;  // loss NaN when the cell has no finished trial
  bool available = false;                  // false: no fit for this model, or the cell has no finite best loss
  std::string flag;                        // "", "extrapolated ...", "beyond fit: L <= beta", or why unavailable
  double d_eff = 0, speedup = 0;           // d_eff +inf when beyond the fit
  double ci_low = 0, ci_high = 0;          // bootstrap percentile interval of the speedup
  std::string ci_method;                   // "seeds", "near-best", "seeds+near-best"
  int ci_replicates = 0;                   // replicates whose fit succeeded
};

struct TargetRow {
  std::string optimizer, model_tag, cell, point;
  double data_ratio = 0;
  int seeds = 0;
  bool reached = false;  // the seed-mean eval loss reached the target at some eval
  std::int64_t steps_to_target = -1, tokens_to_target = -1;
  double mean_final = 0, z = 0, p_value = 1;
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
  int trials_total = 0, trials_finished = 0;
  bool partial = false;  // some trial is pending or running
  std::vector<std::string> notes;
  std::vector<CellResult> cells;
  std::vector<FitResult> fits;
  std::vector<SpeedupRow> speedups;
  std::vector<BudgetRow> budget;
  std::vector<TargetRow> targets;
};

Analysis analyze(const SweepData& sweep, const AnalysisOptions& options);

// Percentile of sorted values (linear interpolation between order statistics); +inf entries sort last.
double percentile(const std::vector<double>& sorted, double q);

}  // namespace expt::analysis
