#include "analysis/analysis.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "core/io/heartbeat.hpp"
#include "core/io/metrics.hpp"
#include "core/io/results.hpp"
#include "core/io/trial_lease.hpp"

namespace expt::analysis {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double mean_or_inf(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) {
    if (!std::isfinite(x)) return kInf;
    s += x;
  }
  return s / static_cast<double>(v.size());
}

CellResult analyze_cell(const SweepData& sweep, const CellInfo& info, double tolerance) {
  CellResult cell;
  cell.info = info;
  std::vector<PointResult> points;  // in first-seen order (sweep.h5 lists trials in plan order)
  std::map<std::string, std::size_t> index;
  for (const TrialRow& t : sweep.trials) {
    if (t.cell != info.name) continue;
    if (t.state == "COMPLETED")
      ++cell.completed;
    else if (t.state == "DIVERGED")
      ++cell.diverged;
    else if (t.state == "FAILED")
      ++cell.failed;
    else if (t.state == "running")
      ++cell.running;
    else
      ++cell.pending;
    if (!t.finished()) continue;
    ++cell.trials_finished;
    cell.cpu_s += t.wall_s * sweep.ranks_per_trial;
    cell.tokens_spent += t.tokens;
    auto [it, inserted] = index.emplace(t.point, points.size());
    if (inserted) points.push_back(PointResult{t.point, t.axes, {}, 0, 0});
    PointResult& p = points[it->second];
    p.seed_losses.push_back(t.loss);
    if (t.state == "COMPLETED") p.tokens = std::max(p.tokens, static_cast<double>(t.tokens));
  }
  if (points.empty()) return cell;
  for (PointResult& p : points) p.loss = mean_or_inf(p.seed_losses);

  // Best: the lowest mean loss; ties keep the earlier point (plan order), so the answer is stable.
  std::size_t best = 0;
  for (std::size_t i = 1; i < points.size(); ++i)
    if (points[i].loss < points[best].loss) best = i;
  cell.has_best = true;
  cell.best = points[best];

  // Near-best: finite losses strictly below L* + tolerance, best first, then by loss.
  std::vector<std::size_t> near;
  for (std::size_t i = 0; i < points.size(); ++i)
    if (std::isfinite(points[i].loss) && points[i].loss < cell.best.loss + tolerance) near.push_back(i);
  std::stable_sort(near.begin(), near.end(),
                   [&](std::size_t a, std::size_t b) { return points[a].loss < points[b].loss; });
  for (std::size_t i : near) {
    cell.near_best.push_back(points[i].point);
    cell.near_best_points.push_back(points[i]);
  }
  if (near.empty()) cell.near_best_points.push_back(cell.best);  // all diverged: the bootstrap draws +inf

  // One-at-a-time ablation: every finished point that differs from the best in exactly one axis,
  // in axis order, then in the order of the axis values.
  const auto& best_values = cell.best.axes;
  struct Candidate {
    std::size_t axis, value_index;
    AblationRow row;
  };
  std::vector<Candidate> rows;
  for (const PointResult& p : points) {
    if (p.point == cell.best.point || p.axes.size() != best_values.size()) continue;
    int differing = 0;
    std::size_t which = 0;
    for (std::size_t k = 0; k < p.axes.size(); ++k) {
      if (p.axes[k].first != best_values[k].first) {
        differing = 2;
        break;
      }
      if (p.axes[k].second != best_values[k].second) {
        ++differing;
        which = k;
      }
    }
    if (differing != 1) continue;
    const auto& [axis, value] = p.axes[which];
    Candidate c{0, 0, AblationRow{axis, written_text(info, axis, value), p.point, p.loss, p.loss - cell.best.loss}};
    for (std::size_t a = 0; a < info.axes.size(); ++a)
      if (info.axes[a].first == axis) {
        c.axis = a;
        for (std::size_t v = 0; v < info.axes[a].second.size(); ++v)
          if (is_written_as(value, info.axes[a].second[v])) c.value_index = v;
      }
    if (!std::isfinite(p.loss)) c.row.delta = kInf;
    rows.push_back(std::move(c));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Candidate& a, const Candidate& b) {
    return a.axis != b.axis ? a.axis < b.axis : a.value_index < b.value_index;
  });
  for (Candidate& c : rows) cell.ablation.push_back(std::move(c.row));

  // Grid edges: the best value at either end of an axis with several values.
  for (const auto& [key, value] : best_values)
    for (const auto& [axis, values] : info.axes) {
      if (axis != key || values.size() < 2) continue;
      if (is_written_as(value, values.front()))
        cell.edge_warnings.push_back(fmt::format("{}={} at the lower edge", key, values.front().text));
      else if (is_written_as(value, values.back()))
        cell.edge_warnings.push_back(fmt::format("{}={} at the upper edge", key, values.back().text));
    }
  return cell;
}

// The loss of a cell in one bootstrap replicate (see docs/analysis.md "Confidence intervals"):
// with seed repeats of the best point, the mean of its seeds drawn with replacement; otherwise one
// point drawn uniformly from the near-best set (configs the study cannot tell apart).
double resample_cell(const CellResult& c, std::mt19937_64& rng) {
  const auto draw = [&rng](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  if (c.best.seed_losses.size() >= 2) {
    std::vector<double> s;
    for (std::size_t i = 0; i < c.best.seed_losses.size(); ++i)
      s.push_back(c.best.seed_losses[draw(c.best.seed_losses.size())]);
    return mean_or_inf(s);
  }
  return c.near_best_points[draw(c.near_best_points.size())].loss;
}

const char* resample_method(const CellResult& c) { return c.best.seed_losses.size() >= 2 ? "seeds" : "near-best"; }

std::vector<TargetRow> target_rows(const SweepData& sweep, const std::vector<CellResult>& cells,
                                   const AnalysisOptions& options) {
  std::vector<TargetRow> out;
  const double target = *options.target;
  for (const CellResult& cell : cells) {
    if (!cell.has_best) continue;
    std::vector<TargetRow> candidates;
    std::map<std::string, std::vector<const TrialRow*>> by_point;
    std::vector<std::string> order;
    for (const TrialRow& t : sweep.trials) {
      if (t.cell != cell.info.name || !t.finished()) continue;
      if (by_point[t.point].empty()) order.push_back(t.point);
      by_point[t.point].push_back(&t);
    }
    for (const std::string& point : order) {
      const auto& trials = by_point[point];
      TargetRow row{cell.info.optimizer,  cell.info.model_tag,
                    cell.info.name,       point,
                    cell.info.data_ratio, static_cast<int>(trials.size())};
      std::vector<double> finals;
      // step -> (sum of eval losses, tokens sum, count) over the seeds that logged that step.
      std::map<std::int64_t, std::tuple<double, double, int>> curve;
      for (const TrialRow* t : trials) {
        finals.push_back(t->loss);
        if (t->state != "COMPLETED") continue;
        const auto result = sweep.dir / "trials" / t->id / "result.h5";
        io::EvalSchema schema;
        std::vector<io::EvalRow> evals;
        try {
          evals = io::read_eval_rows(result, &schema);
        } catch (const std::exception&) {
          continue;
        }
        std::size_t column = schema.fields.size();
        const std::string wanted = fmt::format("loss@{}", cell.info.seq_len);
        for (std::size_t f = 0; f < schema.fields.size(); ++f)
          if (schema.fields[f] == wanted || (column == schema.fields.size() && schema.fields[f].rfind("loss@", 0) == 0))
            column = f;
        if (column == schema.fields.size()) continue;
        for (const io::EvalRow& e : evals) {
          auto& [sum, tok, n] = curve[e.step];
          sum += e.values[column];
          tok += static_cast<double>(e.tokens);
          ++n;
        }
      }
      // The first eval step that every seed logged (one stopping step for all runs) whose mean loss
      // reaches the target; a diverged seed never reaches it.
      const bool any_inf = std::any_of(finals.begin(), finals.end(), [](double v) { return !std::isfinite(v); });
      for (const auto& [step, acc] : curve) {
        const auto& [sum, tok, n] = acc;
        if (any_inf || n != row.seeds) continue;
        if (sum / n <= target) {
          row.reached = true;
          row.steps_to_target = step;
          row.tokens_to_target = static_cast<std::int64_t>(std::llround(tok / n));
          break;
        }
      }
      row.mean_final = mean_or_inf(finals);
      // One-sided z-test of H0: mean final loss >= target, with known per-run sigma:
      // z = (target - mean) sqrt(n) / sigma, p = P(Z >= z) = erfc(z / sqrt 2) / 2.
      row.z = std::isfinite(row.mean_final)
                  ? (target - row.mean_final) * std::sqrt(static_cast<double>(row.seeds)) / options.sigma
                  : -kInf;
      row.p_value = 0.5 * std::erfc(row.z / std::sqrt(2.0));
      row.significant = row.p_value < options.alpha_test;
      candidates.push_back(std::move(row));
    }
    // The cell's answer: the fewest steps to the target; ties and non-reaching points by final loss.
    const auto better = [](const TargetRow& a, const TargetRow& b) {
      if (a.reached != b.reached) return a.reached;
      if (a.reached && a.steps_to_target != b.steps_to_target) return a.steps_to_target < b.steps_to_target;
      return a.mean_final < b.mean_final;
    };
    std::size_t pick = 0;
    for (std::size_t i = 1; i < candidates.size(); ++i)
      if (better(candidates[i], candidates[pick])) pick = i;
    if (!candidates.empty()) out.push_back(candidates[pick]);
  }
  return out;
}

}  // namespace

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  if (!std::isfinite(sorted[hi])) return pos == static_cast<double>(lo) ? sorted[lo] : sorted[hi];
  const double w = pos - static_cast<double>(lo);
  return sorted[lo] * (1 - w) + sorted[hi] * w;
}

Analysis analyze(const SweepData& sweep, const AnalysisOptions& options) {
  Analysis a;
  a.study = sweep.study;
  a.expt_commit = std::string(io::build_git_sha());
  a.config_schema = sweep.config_schema;
  a.strategy = sweep.strategy;
  a.dir = sweep.dir.string();
  a.options = options;
  a.tolerance = options.tolerance ? *options.tolerance : sweep.tolerance;
  a.trials_total = static_cast<int>(sweep.trials.size());
  for (const TrialRow& t : sweep.trials) a.trials_finished += t.finished() ? 1 : 0;
  a.partial = a.trials_finished < a.trials_total;
  if (a.partial) {
    // "Running" only from a fresh heartbeat (core/io/heartbeat.hpp); a directory written before
    // heartbeats existed cannot tell, and is described as before.
    const io::SweepLiveness live = io::sweep_liveness(sweep.dir, io::lease_clock_now());
    const std::string what = !live.any || live.running ? std::string("sweep still running")
                                                       : fmt::format("sweep not running, {}", live.describe());
    a.notes.push_back(fmt::format(
        "{}: {} of {} planned trials finished; only finished trials are analysed{}{}", what, a.trials_finished,
        a.trials_total, sweep.strategy == "coordinate_descent" ? " (coordinate descent plans more rounds)" : "",
        live.any && !live.running && !live.command.empty() ? fmt::format("; resume with: {}", live.command)
                                                           : std::string()));
  }
  for (const TrialRow& t : sweep.trials)
    if (t.finished() && t.wall_s == 0 && t.state == "COMPLETED")
      a.notes.push_back(fmt::format("trial {}: no readable result.h5 summary; its CPU time is not counted", t.id));

  for (const CellInfo& info : sweep.cells) a.cells.push_back(analyze_cell(sweep, info, a.tolerance));

  // Budget per optimizer, in order of first appearance.
  for (const CellResult& c : a.cells) {
    auto it = std::find_if(a.budget.begin(), a.budget.end(),
                           [&](const BudgetRow& b) { return b.optimizer == c.info.optimizer; });
    if (it == a.budget.end()) {
      a.budget.push_back(BudgetRow{c.info.optimizer, 0, 0, 0});
      it = a.budget.end() - 1;
    }
    it->trials += c.trials_finished;
    it->cpu_s += c.cpu_s;
    it->tokens += c.tokens_spent;
  }

  // Baseline fits per model size.
  std::vector<std::string> models;
  for (const CellResult& c : a.cells)
    if (c.info.data_ratio > 0 && std::find(models.begin(), models.end(), c.info.model_tag) == models.end())
      models.push_back(c.info.model_tag);
  if (models.empty() && !a.cells.empty())
    a.notes.push_back("no data ratios (the study has no scales): no speedup over " + options.baseline);
  std::map<std::string, std::vector<const CellResult*>> baseline_cells;
  for (const std::string& m : models) {
    FitResult f;
    f.model_tag = m;
    std::vector<const CellResult*> used;
    for (const CellResult& c : a.cells)
      if (c.info.model_tag == m && c.info.optimizer == options.baseline && c.info.data_ratio > 0 && c.has_best &&
          std::isfinite(c.best.loss) && c.best.tokens > 0)
        used.push_back(&c);
    std::sort(used.begin(), used.end(),
              [](const CellResult* x, const CellResult* y) { return x->info.data_ratio < y->info.data_ratio; });
    for (const CellResult* c : used) {
      f.cells.push_back(c->info.name);
      f.ratios.push_back(c->info.data_ratio);
      f.d.push_back(c->best.tokens);
      f.loss.push_back(c->best.loss);
    }
    f.fit = fit_power_law(f.d, f.loss);
    if (!f.fit.ok) f.fit.message = options.baseline + " on " + m + ": " + f.fit.message;
    baseline_cells[m] = used;
    a.fits.push_back(std::move(f));
  }

  // Speedups with bootstrap intervals. One RNG stream per model size, seeded from its name, so a
  // model's interval does not change when another model's cells finish.
  for (const FitResult& f : a.fits) {
    std::vector<std::size_t> rows_of_model;
    for (const CellResult& c : a.cells) {
      if (c.info.model_tag != f.model_tag || c.info.data_ratio <= 0) continue;
      SpeedupRow r;
      r.optimizer = c.info.optimizer;
      r.model_tag = c.info.model_tag;
      r.cell = c.info.name;
      r.data_ratio = c.info.data_ratio;
      r.d = c.best.tokens;
      r.loss = c.has_best ? c.best.loss : std::numeric_limits<double>::quiet_NaN();
      if (!f.fit.ok) {
        r.flag = "no fit (see the fit table)";
      } else if (!c.has_best) {
        r.flag = "no finished trial";
      } else if (!std::isfinite(c.best.loss)) {
        r.flag = "no finite loss (diverged or failed)";
      } else if (!(c.best.tokens > 0)) {
        r.flag = "no token count";
      } else {
        const EffectiveData e = invert_power_law(f.fit, c.best.loss);
        r.available = true;
        r.d_eff = e.d_eff;
        r.speedup = e.d_eff / r.d;
        r.flag = effective_data_flag(e.kind);
      }
      rows_of_model.push_back(a.speedups.size());
      a.speedups.push_back(std::move(r));
    }
    if (!f.fit.ok || options.bootstrap_samples <= 0) continue;
    std::uint64_t seed = 1469598103934665603ull;  // FNV-1a of the model tag
    for (char ch : f.model_tag) seed = (seed ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
    std::mt19937_64 rng(seed);
    const auto& used = baseline_cells[f.model_tag];
    std::map<std::string, std::vector<double>> samples;  // cell -> replicate speedups
    for (int b = 0; b < options.bootstrap_samples; ++b) {
      std::map<std::string, double> drawn;
      std::vector<double> losses;
      for (const CellResult* c : used) {
        drawn[c->info.name] = resample_cell(*c, rng);
        losses.push_back(drawn[c->info.name]);
      }
      const PowerLawFit fit = fit_power_law(f.d, losses);
      for (std::size_t i : rows_of_model) {
        const SpeedupRow& r = a.speedups[i];
        if (!r.available) continue;
        const CellResult* c = nullptr;
        for (const CellResult& x : a.cells)
          if (x.info.name == r.cell) c = &x;
        const double l = drawn.count(r.cell) ? drawn[r.cell] : resample_cell(*c, rng);
        if (!fit.ok) continue;
        const double s = std::isfinite(l) ? invert_power_law(fit, l).d_eff / r.d : 0.0;
        samples[r.cell].push_back(s);
      }
    }
    const double q = (1 - options.confidence) / 2;
    for (std::size_t i : rows_of_model) {
      SpeedupRow& r = a.speedups[i];
      if (!r.available) continue;
      auto& v = samples[r.cell];
      std::sort(v.begin(), v.end());
      r.ci_replicates = static_cast<int>(v.size());
      if (v.empty()) {
        r.ci_low = r.ci_high = std::numeric_limits<double>::quiet_NaN();
      } else {
        r.ci_low = percentile(v, q);
        r.ci_high = percentile(v, 1 - q);
      }
      std::set<std::string> methods;
      for (const CellResult* c : used) methods.insert(resample_method(*c));
      for (const CellResult& x : a.cells)
        if (x.info.name == r.cell) methods.insert(resample_method(x));
      r.ci_method = methods.size() == 2 ? "seeds+near-best" : *methods.begin();
    }
  }
  for (const FitResult& f : a.fits) {
    if (!f.fit.ok || f.fit.n_points != 3) continue;
    double scale = 0;
    for (double l : f.loss) scale += l * l;
    if (f.fit.rss <= 1e-20 * scale)
      a.notes.push_back(
          fmt::format("{} fit on {}: 3 points for 3 parameters: the curve passes through them (zero "
                      "degrees of freedom), so residuals cannot test it; the interval carries the "
                      "uncertainty",
                      options.baseline, f.model_tag));
    else
      a.notes.push_back(
          fmt::format("{} fit on {}: no decreasing power law with beta in [0, min L) passes through the 3 "
                      "points (beta = {:.4g}); it is the least-squares compromise, see the residuals",
                      options.baseline, f.model_tag, f.fit.beta));
  }

  if (options.target) a.targets = target_rows(sweep, a.cells, options);
  return a;
}

}  // namespace expt::analysis
