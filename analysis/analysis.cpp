#include "analysis/analysis.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <stdexcept>

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

// The eval column of `metric` in a trial's schema: the name itself, else <name>@<seq_len>, else the
// first <name>@<length>; fields.size() when there is none.
std::size_t metric_column(const io::EvalSchema& schema, const std::string& name, int seq_len) {
  const std::string at_len = fmt::format("{}@{}", name, seq_len);
  std::size_t found = schema.fields.size();
  for (std::size_t f = 0; f < schema.fields.size(); ++f) {
    if (schema.fields[f] == name || schema.fields[f] == at_len) return f;
    if (found == schema.fields.size() && schema.fields[f].rfind(name + "@", 0) == 0) found = f;
  }
  return found;
}

// The CPU-seconds a trial spent in training steps: the median wall time per step between
// consecutive train rows (robust to the evals and checkpoints between some of them) x its steps x
// the ranks of a trial; 0 when result.h5 has fewer than two train rows or cannot be read.
double step_cpu_seconds(const SweepData& sweep, const TrialRow& t) {
  std::vector<io::TrainRow> rows;
  try {
    rows = io::read_train_rows(sweep.dir / "trials" / t.id / "result.h5");
  } catch (const std::exception&) {
    return 0;
  }
  std::vector<double> per_step;
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (rows[i].step > rows[i - 1].step && rows[i].wall_s >= rows[i - 1].wall_s)
      per_step.push_back((rows[i].wall_s - rows[i - 1].wall_s) / static_cast<double>(rows[i].step - rows[i - 1].step));
  if (per_step.empty()) return 0;
  std::nth_element(per_step.begin(), per_step.begin() + static_cast<std::ptrdiff_t>(per_step.size() / 2),
                   per_step.end());
  return per_step[per_step.size() / 2] * static_cast<double>(t.steps) * sweep.ranks_per_trial;
}

std::uint64_t seed_of(const std::string& name) {
  std::uint64_t seed = 1469598103934665603ull;  // FNV-1a
  for (char ch : name) seed = (seed ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  return seed;
}

CellResult analyze_cell(const SweepData& sweep, const CellInfo& info, double tolerance) {
  CellResult cell;
  cell.info = info;
  std::vector<PointResult> points;  // in first-seen order (sweep.h5 lists trials in plan order)
  std::map<std::string, std::size_t> index;
  std::map<std::string, std::vector<std::string>> ran_values;  // label key -> values, first seen first
  for (const TrialRow& t : sweep.trials) {
    if (t.cell != info.name) continue;
    ++cell.state_counts[t.state];
    if (t.state == "COMPLETED")
      ++cell.completed;
    else if (t.state == "DIVERGED")
      ++cell.diverged;
    else if (t.state == "FAILED")
      ++cell.failed;
    else if (t.state == "running")
      ++cell.running;
    else if (t.state == "pending")
      ++cell.pending;
    if (t.pruned()) {
      // Never ranked (it has no result at this ratio), but what its trunk trained was spent.
      ++cell.pruned;
      if (t.tokens > 0) {
        ++cell.pruned_trained;
        cell.cpu_s += t.wall_s * sweep.ranks_per_trial;
        cell.tokens_spent += t.tokens;
      }
      continue;
    }
    if (!t.finished()) continue;
    ++cell.trials_finished;
    // What this trial cost the sweep: a WSD branch's first fork_step steps were trained once by
    // its trunk, so it counts only its own steps (tokens exactly, time pro rata: its wall time
    // includes the trunk's rows).
    const double own = t.fork_step > 0 && t.steps > t.fork_step
                           ? static_cast<double>(t.steps - t.fork_step) / static_cast<double>(t.steps)
                           : 1.0;
    cell.cpu_s += t.wall_s * sweep.ranks_per_trial * own;
    cell.tokens_spent += t.fork_step > 0 && t.steps > 0 ? t.tokens / t.steps * (t.steps - t.fork_step) : t.tokens;
    auto [it, inserted] = index.emplace(t.point, points.size());
    if (inserted) points.push_back(PointResult{t.point, t.axes, {}, {}, {}, {}, 0, 0});
    PointResult& p = points[it->second];
    p.seed_losses.push_back(t.loss);
    p.seeds.push_back(t.seed);
    p.wall_s.push_back(t.wall_s);
    p.step_cpu_s.push_back(0);
    // What the trial ran on each label key: the planned value when its config was unreadable.
    for (const auto& [key, planned] : info.label_keys) {
      std::string v = planned;
      for (const auto& [k, actual] : t.ran)
        if (k == key) v = actual;
      auto& seen = ran_values[key];
      if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
    }
    if (t.state == "COMPLETED") p.tokens = std::max(p.tokens, static_cast<double>(t.tokens));
  }
  for (const auto& [key, planned] : info.label_keys) {
    const auto it = ran_values.find(key);
    std::string values = it == ran_values.end() ? planned : "";
    if (it != ran_values.end())
      for (const std::string& v : it->second) values += (values.empty() ? "" : "|") + v;
    cell.mixed = cell.mixed || (it != ran_values.end() && it->second.size() > 1);
    cell.ran += (cell.ran.empty() ? "" : " ") + key + "=" + values;
  }
  if (points.empty()) return cell;
  for (PointResult& p : points) p.loss = mean_or_inf(p.seed_losses);

  // Points with different seeds are compared on the seeds they share (docs/analysis.md "Points
  // with more seeds"): (1) every point by its mean over the seeds all of them share (the search
  // seeds) gives L* and the near-best set B = {loss < L* + tolerance}; (2) the best is the point of
  // B with the lowest mean over the seeds every point of B shares (with search.confirm, the
  // confirmation seeds too). With the same seeds everywhere both steps are the plain mean over
  // seeds. Ties keep the earlier point (plan order), so the answer is stable.
  const auto shared_seeds = [&](const std::vector<std::size_t>& which) {
    std::set<std::int64_t> shared(points[which.front()].seeds.begin(), points[which.front()].seeds.end());
    for (std::size_t i : which) {
      const std::set<std::int64_t> own(points[i].seeds.begin(), points[i].seeds.end());
      std::set<std::int64_t> both;
      std::set_intersection(shared.begin(), shared.end(), own.begin(), own.end(), std::inserter(both, both.end()));
      shared = std::move(both);
    }
    return shared;
  };
  // A point's mean over `seeds` (its own mean when it has none of them).
  const auto mean_on = [](const PointResult& p, const std::set<std::int64_t>& seeds) {
    std::vector<double> v;
    for (std::size_t k = 0; k < p.seeds.size(); ++k)
      if (seeds.count(p.seeds[k]) != 0) v.push_back(p.seed_losses[k]);
    return v.empty() ? mean_or_inf(p.seed_losses) : mean_or_inf(v);
  };
  const auto argmin = [](const std::vector<std::size_t>& which, const std::vector<double>& loss) {
    std::size_t best = which.front();
    for (std::size_t i : which)
      if (loss[i] < loss[best]) best = i;
    return best;
  };
  std::vector<std::size_t> all(points.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  const std::set<std::int64_t> common = shared_seeds(all);
  std::vector<double> on_common(points.size()), on_band(points.size(), kInf);
  for (std::size_t i = 0; i < points.size(); ++i) on_common[i] = mean_on(points[i], common);
  const std::size_t first = argmin(all, on_common);
  std::vector<std::size_t> band;
  for (std::size_t i = 0; i < points.size(); ++i)
    if (i == first || (std::isfinite(on_common[i]) && on_common[i] < on_common[first] + tolerance)) band.push_back(i);
  const std::set<std::int64_t> band_seeds = shared_seeds(band);
  for (std::size_t i : band) on_band[i] = mean_on(points[i], band_seeds);
  const std::size_t best = argmin(band, on_band);
  cell.has_best = true;
  cell.best = points[best];
  cell.ranked_seeds.assign(band_seeds.begin(), band_seeds.end());
  {
    std::size_t k = 0;  // the step costs of the best point's seeds (for the compute speedup)
    for (const TrialRow& t : sweep.trials)
      if (t.cell == info.name && t.finished() && t.point == cell.best.point && k < cell.best.step_cpu_s.size())
        cell.best.step_cpu_s[k++] = t.state == "COMPLETED" ? step_cpu_seconds(sweep, t) : 0;
  }

  // Near-best: B's finite points, best first, then by their mean over B's shared seeds.
  std::vector<std::size_t> near;
  for (std::size_t i : band)
    if (std::isfinite(on_common[i])) near.push_back(i);
  std::stable_sort(near.begin(), near.end(), [&](std::size_t a, std::size_t b) {
    return (a == best) != (b == best) ? a == best : on_band[a] < on_band[b];
  });
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
    // Paired: the point and the best over the seeds both have.
    const std::set<std::int64_t> pair = shared_seeds({best, static_cast<std::size_t>(&p - points.data())});
    const double loss = mean_on(p, pair);
    Candidate c{0, 0,
                AblationRow{axis, written_text(info, axis, value), p.point, loss, loss - mean_on(cell.best, pair)}};
    for (std::size_t a = 0; a < info.axes.size(); ++a)
      if (info.axes[a].first == axis) {
        c.axis = a;
        for (std::size_t v = 0; v < info.axes[a].second.size(); ++v)
          if (is_written_as(value, info.axes[a].second[v])) c.value_index = v;
      }
    if (!std::isfinite(loss)) c.row.delta = kInf;
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

// The interval of sorted replicates at `confidence`, with why it has no width when it has none.
Interval interval_of(std::vector<double> v, double confidence, const std::string& method) {
  Interval i;
  i.method = method;
  std::sort(v.begin(), v.end());
  i.replicates = static_cast<int>(v.size());
  if (v.empty()) {
    i.low = i.high = std::numeric_limits<double>::quiet_NaN();
    return i;
  }
  const double q = (1 - confidence) / 2;
  i.low = percentile(v, q);
  i.high = percentile(v, 1 - q);
  if (i.low == i.high) i.degenerate = method == "seeds" ? "n/a (seeds equal)" : "n/a (one point)";
  return i;
}

std::vector<TargetRow> target_rows(const SweepData& sweep, const std::vector<CellResult>& cells,
                                   const AnalysisOptions& options, const Metric& metric) {
  std::vector<TargetRow> out;
  const double target = metric.ranked(*options.target);
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
      TargetRow row;
      row.optimizer = cell.info.optimizer;
      row.model_tag = cell.info.model_tag;
      row.cell = cell.info.name;
      row.point = point;
      row.data_ratio = cell.info.data_ratio;
      row.seeds = static_cast<int>(trials.size());
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
        const std::size_t column = metric_column(schema, metric.name, cell.info.seq_len);
        if (column == schema.fields.size()) continue;
        for (const io::EvalRow& e : evals) {
          auto& [sum, tok, n] = curve[e.step];
          sum += metric.ranked(e.values[column]);
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
      // One-sided z-test of H0: mean final loss >= target, z = (target - mean) sqrt(n) / sigma,
      // p = P(Z >= z) = erfc(z / sqrt 2) / 2; sigma the point's own seed spread (sample standard
      // deviation) when it has two or more seeds, else --sigma.
      const SeedSpread spread = seed_spread(finals);
      row.sigma = spread.n >= 2 ? spread.sd : options.sigma;
      row.sigma_source = spread.n >= 2 ? "seeds" : "--sigma";
      const double gap = target - row.mean_final;
      row.z = !std::isfinite(row.mean_final) ? -kInf
              : row.sigma > 0                ? gap * std::sqrt(static_cast<double>(row.seeds)) / row.sigma
              : gap > 0                      ? kInf
              : gap < 0                      ? -kInf
                                             : 0.0;
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

Metric metric_named(const std::string& name) {
  Metric m;
  m.name = name;
  m.higher_is_better = name.find("acc") != std::string::npos;
  return m;
}

SeedSpread seed_spread(const std::vector<double>& losses) {
  SeedSpread s;
  double sum = 0;
  for (double x : losses) {
    if (!std::isfinite(x)) continue;
    s.min = s.n == 0 ? x : std::min(s.min, x);
    s.max = s.n == 0 ? x : std::max(s.max, x);
    sum += x;
    ++s.n;
  }
  if (s.n < 2) return s;
  const double mean = sum / s.n;
  double ss = 0;
  for (double x : losses)
    if (std::isfinite(x)) ss += (x - mean) * (x - mean);
  s.sd = std::sqrt(ss / (s.n - 1));
  return s;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  if (!std::isfinite(sorted[hi])) return pos == static_cast<double>(lo) ? sorted[lo] : sorted[hi];
  const double w = pos - static_cast<double>(lo);
  return sorted[lo] * (1 - w) + sorted[hi] * w;
}

Analysis analyze(const SweepData& sweep_in, const AnalysisOptions& options) {
  Analysis a;
  a.metric = metric_named(options.metric);
  // The ranked value of every finished trial: sweep.h5's final eval loss for the default metric,
  // else the metric's column in the last eval row of its result.h5.
  SweepData sweep = sweep_in;
  if (options.metric != "loss")
    for (TrialRow& t : sweep.trials) {
      if (t.state != "COMPLETED") continue;
      const CellInfo* info = sweep.find_cell(t.cell);
      io::EvalSchema schema;
      std::vector<io::EvalRow> evals;
      try {
        evals = io::read_eval_rows(sweep.dir / "trials" / t.id / "result.h5", &schema);
      } catch (const std::exception&) {
        t.loss = kInf;  // COMPLETED without a readable result: no value to rank
        continue;
      }
      const std::size_t column = metric_column(schema, a.metric.name, info != nullptr ? info->seq_len : 0);
      if (column == schema.fields.size()) {
        std::string fields;
        for (const std::string& f : schema.fields) fields += (fields.empty() ? "" : ", ") + f;
        throw std::runtime_error(
            fmt::format("--metric {}: trial {} has no such eval column (it has: {})", a.metric.name, t.id, fields));
      }
      const double v = evals.empty() ? kInf : a.metric.ranked(evals.back().values[column]);
      t.loss = std::isfinite(v) ? v : kInf;
    }

  a.study = sweep.study;
  a.expt_commit = std::string(io::build_git_sha());
  a.config_schema = sweep.config_schema;
  a.strategy = sweep.strategy;
  a.dir = sweep.dir.string();
  a.options = options;
  a.tolerance = options.tolerance ? *options.tolerance : sweep.tolerance;
  a.trials_total = static_cast<int>(sweep.trials.size());
  for (const TrialRow& t : sweep.trials) {
    a.trials_finished += t.finished() ? 1 : 0;
    a.trials_pruned += t.pruned() ? 1 : 0;
  }
  a.partial = a.trials_finished + a.trials_pruned < a.trials_total;
  if (a.partial) {
    // "Running" only from a fresh heartbeat (core/io/heartbeat.hpp); a directory written before
    // heartbeats existed cannot tell, and is described as before.
    const io::SweepLiveness live = io::sweep_liveness(sweep.dir, io::lease_clock_now());
    a.running = !live.any || live.running;
    const std::string what =
        a.running ? std::string("sweep still running") : fmt::format("sweep not running, {}", live.describe());
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
  for (CellResult& c : a.cells) {
    if (c.mixed)
      a.notes.push_back(
          fmt::format("cell {}: its trials ran {}: not one configuration; the cell's name does not "
                      "say what ran",
                      c.info.name, c.ran));
    if (!c.has_best || options.bootstrap_samples <= 0) continue;
    std::mt19937_64 rng(seed_of(c.info.name));
    std::vector<double> replicates;
    for (int b = 0; b < options.bootstrap_samples; ++b) replicates.push_back(resample_cell(c, rng));
    c.best_interval = interval_of(std::move(replicates), options.confidence, resample_method(c));
  }

  // search.halving: a cell's pruned points are not ranked in it (they have no result there), so
  // its best is among the points that reached it; say how many were pruned before.
  for (const CellResult& c : a.cells) {
    if (c.pruned == 0) continue;
    std::set<std::string> points;
    for (const TrialRow& t : sweep.trials)
      if (t.cell == c.info.name && t.pruned()) points.insert(t.point);
    a.notes.push_back(fmt::format(
        "cell {}: {} point(s) pruned by successive halving at a smaller ratio ({} trial(s)): not ranked here (no "
        "result at this ratio), so its best is the best of the points that reached it; what their trunks trained "
        "counts in the tuning budget",
        c.info.name, points.size(), c.pruned));
  }

  // Budget per optimizer, in order of first appearance.
  for (const CellResult& c : a.cells) {
    auto it = std::find_if(a.budget.begin(), a.budget.end(),
                           [&](const BudgetRow& b) { return b.optimizer == c.info.optimizer; });
    if (it == a.budget.end()) {
      a.budget.push_back(BudgetRow{c.info.optimizer, 0, 0, 0});
      it = a.budget.end() - 1;
    }
    it->trials += c.trials_finished + c.pruned_trained;
    it->cpu_s += c.cpu_s;
    it->tokens += c.tokens_spent;
  }

  // Baseline fits per group (compared values, model size).
  std::vector<std::pair<std::string, std::string>> groups;
  for (const CellResult& c : a.cells) {
    const std::pair<std::string, std::string> g{c.info.compare_text(), c.info.model_tag};
    if (c.info.data_ratio > 0 && std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  if (groups.empty() && !a.cells.empty())
    a.notes.push_back("no data ratios (the study has no scales): no speedup over " + options.baseline);
  const auto group_name = [](const std::pair<std::string, std::string>& g) {
    return g.first.empty() ? g.second : g.first + " " + g.second;
  };
  std::map<std::pair<std::string, std::string>, std::vector<const CellResult*>> baseline_cells;
  for (const auto& g : groups) {
    FitResult f;
    f.compare = g.first;
    f.model_tag = g.second;
    std::vector<const CellResult*> used;
    for (const CellResult& c : a.cells)
      if (c.info.compare_text() == g.first && c.info.model_tag == g.second && c.info.optimizer == options.baseline &&
          c.info.data_ratio > 0 && c.has_best && std::isfinite(c.best.loss) && c.best.tokens > 0)
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
    if (!f.fit.ok) f.fit.message = options.baseline + " on " + group_name(g) + ": " + f.fit.message;
    f.degrees_of_freedom = f.fit.n_points - 3;
    double scale = 0;
    for (double l : f.loss) scale += l * l;
    f.interpolation = f.fit.ok && f.degrees_of_freedom == 0 && f.fit.rss <= 1e-20 * scale;
    baseline_cells[g] = used;
    a.fits.push_back(std::move(f));
  }

  // The cost of a cell's best point: the mean over its seeds of `costs` (NaN when one is unknown).
  const auto cost_of = [](const std::vector<double>& costs) {
    double sum = 0;
    for (double x : costs) {
      if (!(x > 0)) return std::numeric_limits<double>::quiet_NaN();
      sum += x;
    }
    return costs.empty() ? std::numeric_limits<double>::quiet_NaN() : sum / static_cast<double>(costs.size());
  };

  // Speedups with bootstrap intervals, at the ratios the baseline ran. One RNG stream per group,
  // seeded from its name, so a group's interval does not change when another group's cells finish.
  for (const FitResult& f : a.fits) {
    const std::pair<std::string, std::string> g{f.compare, f.model_tag};
    const auto& used = baseline_cells[g];
    // The baseline's cost of D tokens, a line cost = a + b D through its fitted cells (a fixed part
    // such as start-up and evals, and a part per token); a proportional cost when the line falls, has a
    // negative fixed part, or there is one cell. NaN when a cell's cost was not recorded.
    const auto cost_line = [&](bool compute) -> std::function<double(double)> {
      std::vector<double> x, y;
      for (const CellResult* c : used) {
        x.push_back(c->best.tokens);
        y.push_back(cost_of(compute ? c->best.step_cpu_s : c->best.wall_s));
        if (!std::isfinite(y.back())) return [](double) { return std::numeric_limits<double>::quiet_NaN(); };
      }
      if (x.empty()) return [](double) { return std::numeric_limits<double>::quiet_NaN(); };
      const double n = static_cast<double>(x.size());
      double sx = 0, sy = 0, sxx = 0, sxy = 0, per_token = 0;
      for (std::size_t i = 0; i < x.size(); ++i) {
        sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
        per_token += y[i] / x[i] / n;
      }
      const double det = n * sxx - sx * sx;
      const double slope = det > 0 ? (n * sxy - sx * sy) / det : 0, fixed = (sy - slope * sx) / n;
      if (det > 0 && slope >= 0 && fixed >= 0) return [fixed, slope](double d) { return fixed + slope * d; };
      return [per_token](double d) { return per_token * d; };
    };
    const auto base_cpu = cost_line(true), base_wall = cost_line(false);
    std::vector<std::size_t> rows_of_group;
    for (const CellResult& c : a.cells) {
      if (c.info.compare_text() != f.compare || c.info.model_tag != f.model_tag || c.info.data_ratio <= 0) continue;
      SpeedupRow r;
      r.optimizer = c.info.optimizer;
      r.compare = f.compare;
      r.model_tag = c.info.model_tag;
      r.cell = c.info.name;
      r.data_ratio = c.info.data_ratio;
      r.d = c.best.tokens;
      r.loss = c.has_best ? c.best.loss : std::numeric_limits<double>::quiet_NaN();
      const bool baseline_ran = std::any_of(used.begin(), used.end(),
                                            [&](const CellResult* b) { return b->info.data_ratio == r.data_ratio; });
      if (!f.fit.ok) {
        r.flag = "no fit (see the fit table)";
      } else if (!c.has_best) {
        r.flag = "no finished trial";
      } else if (!std::isfinite(c.best.loss)) {
        r.flag = "no finite loss (diverged or failed)";
      } else if (!(c.best.tokens > 0)) {
        r.flag = "no token count";
      } else if (!baseline_ran) {
        r.flag = fmt::format("{} has no finished cell at this ratio", options.baseline);
      } else {
        const EffectiveData e = invert_power_law(f.fit, c.best.loss);
        r.available = true;
        r.d_eff = e.d_eff;
        r.speedup = e.d_eff / r.d;
        r.flag = effective_data_flag(e.kind);
        r.extrapolated = e.kind != EffectiveData::Kind::inside;
        r.compute_speedup = base_cpu(r.d_eff) / cost_of(c.best.step_cpu_s);
        r.wall_speedup = base_wall(r.d_eff) / cost_of(c.best.wall_s);
      }
      rows_of_group.push_back(a.speedups.size());
      a.speedups.push_back(std::move(r));
    }
    if (!f.fit.ok || options.bootstrap_samples <= 0) continue;
    std::mt19937_64 rng(seed_of(f.compare.empty() ? f.model_tag : f.compare + "/" + f.model_tag));
    std::map<std::string, std::vector<double>> samples;  // cell -> replicate speedups
    for (int b = 0; b < options.bootstrap_samples; ++b) {
      std::map<std::string, double> drawn;
      std::vector<double> losses;
      for (const CellResult* c : used) {
        drawn[c->info.name] = resample_cell(*c, rng);
        losses.push_back(drawn[c->info.name]);
      }
      const PowerLawFit fit = fit_power_law(f.d, losses);
      for (std::size_t i : rows_of_group) {
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
    for (std::size_t i : rows_of_group) {
      SpeedupRow& r = a.speedups[i];
      if (!r.available) continue;
      std::set<std::string> methods;
      for (const CellResult* c : used) methods.insert(resample_method(*c));
      for (const CellResult& x : a.cells)
        if (x.info.name == r.cell) methods.insert(resample_method(x));
      const Interval in = interval_of(std::move(samples[r.cell]), options.confidence,
                                      methods.size() == 2 ? "seeds+near-best" : *methods.begin());
      r.ci_low = in.low;
      r.ci_high = in.high;
      r.ci_method = in.method;
      r.ci_replicates = in.replicates;
      r.ci_degenerate = in.degenerate;
    }
  }
  for (const FitResult& f : a.fits) {
    if (!f.fit.ok || f.degrees_of_freedom != 0) continue;
    if (f.interpolation)
      a.notes.push_back(fmt::format(
          "{} fit on {}: 3 points for 3 parameters, 0 degrees of freedom: an interpolation (the curve passes "
          "through the points), so its residuals are zero by construction and test nothing; run >= 4 data "
          "ratios for a fit that can be checked",
          options.baseline, group_name({f.compare, f.model_tag})));
    else
      a.notes.push_back(fmt::format(
          "{} fit on {}: 3 points for 3 parameters, 0 degrees of freedom, and no decreasing power law with beta "
          "in [0, min L) passes through them (beta = {:.4g}): the least-squares compromise; run >= 4 data ratios",
          options.baseline, group_name({f.compare, f.model_tag}), f.fit.beta));
  }

  if (options.target) a.targets = target_rows(sweep, a.cells, options, a.metric);
  return a;
}

}  // namespace expt::analysis
