#include "experiments/study/plan.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "experiments/study/planner_impl.hpp"

namespace expt::experiments {

double radical_inverse(std::uint64_t index, std::uint64_t base) {
  double result = 0;
  double scale = 1.0 / static_cast<double>(base);
  while (index > 0) {
    result += static_cast<double>(index % base) * scale;
    index /= base;
    scale /= static_cast<double>(base);
  }
  return result;
}

std::vector<PlannedTrial> longest_first(std::vector<PlannedTrial> trials) {
  std::stable_sort(trials.begin(), trials.end(),
                   [](const PlannedTrial& a, const PlannedTrial& b) { return a.cost > b.cost; });
  return trials;
}

std::string trunk_key_of(const config::TrialConfig& cfg) {
  config::TrialConfig c = cfg;
  c.train.steps = 1;
  c.out = "";
  return config::config_hash(c);
}

BranchSummary summarise_branches(const std::vector<PlannedTrial>& trials) {
  std::map<std::string, const PlannedTrial*> longest;  // trunk_key -> its trunk
  for (const PlannedTrial& t : trials)
    if (!t.trunk_key.empty()) {
      const PlannedTrial*& l = longest[t.trunk_key];
      if (l == nullptr || t.config.train.steps > l->config.train.steps) l = &t;
    }
  BranchSummary b;
  std::set<std::string> trunks;
  for (const PlannedTrial& t : trials) {
    const double per_step = static_cast<double>(t.config.train.batch_size) * t.config.task.seq_len;
    const double full = static_cast<double>(t.config.train.steps) * per_step;
    b.tokens_independent += full;
    const auto it = t.trunk_key.empty() ? longest.end() : longest.find(t.trunk_key);
    if (it == longest.end() || it->second == &t || it->second->config.train.steps <= t.config.train.steps) {
      b.tokens_branched += full;
      continue;
    }
    ++b.branches;
    trunks.insert(it->second->id);
    b.tokens_branched += full - static_cast<double>(t.branch_step) * per_step;
  }
  b.trunks = trunks.size();
  return b;
}

std::string compare_label(const Study& study, const Cell& cell) {
  std::string s;
  for (std::size_t k = 0; k < cell.compare.size(); ++k)
    s += cat(k ? " " : "", study.compare[k].key, "=", study.compare[k].values[cell.compare[k]].text);
  return s;
}

Planner::Planner(const Study& study) : study_(study) {
  // Every combination of the compared values, the last key varying fastest (one empty combination
  // without compare).
  std::vector<std::vector<std::size_t>> combinations{{}};
  for (const CompareKey& k : study.compare) {
    std::vector<std::vector<std::size_t>> next;
    for (const auto& c : combinations)
      for (std::size_t v = 0; v < k.values.size(); ++v) {
        next.push_back(c);
        next.back().push_back(v);
      }
    combinations = std::move(next);
  }
  for (std::size_t o = 0; o < study.optimizers.size(); ++o)
    for (const auto& combination : combinations) {
      std::string prefix = study.optimizers[o].name;
      for (std::size_t k = 0; k < combination.size(); ++k)
        prefix += cat(k ? "," : "/", study.compare[k].values[combination[k]].text);
      if (study.models.empty()) {
        cells_.push_back(Cell{prefix, o, -1, 0, combination});
      } else {
        for (std::size_t m = 0; m < study.models.size(); ++m)
          for (double ratio : study.data_ratios)
            cells_.push_back(Cell{cat(prefix, "/", study.models[m].tag, "/x", ratio_text(ratio)), o,
                                  static_cast<int>(m), ratio, combination});
      }
    }
  impl_ = std::make_unique<Impl>(study_, cells_);
  for (const Cell& c : cells_) {
    YamlNode doc = study.base;
    const OptimizerSearch& os = study.optimizers[c.optimizer];
    config::apply_override(doc, {{"optimizer", "type"}, scalar_node(os.name, os.pos)});
    for (const YamlEntry& e : os.base.entries) config::apply_override(doc, {{"optimizer", e.key}, e.value});
    if (c.model >= 0)
      for (const YamlEntry& e : study.models[static_cast<std::size_t>(c.model)].model.entries)
        config::apply_override(doc, {{"model", e.key}, e.value});
    impl_->budget_docs.push_back(doc);
    for (std::size_t k = 0; k < c.compare.size(); ++k)
      config::apply_override(doc, {study.compare[k].target, study.compare[k].values[c.compare[k]]});
    impl_->cell_docs.push_back(std::move(doc));
  }

  ErrorList errors;
  std::set<std::string> seen;
  const auto report = [&](const std::vector<config::ConfigError>& errs) {
    for (const config::ConfigError& e : errs)
      if (seen.insert(e.str()).second)
        errors.add(Position{e.file, e.file == study.file ? 0 : 1, e.line, e.col}, e.key_path, e.message);
  };
  const auto take = [&](std::size_t cell, const Materialised& m) {
    report(m.errors);
    if (!m.infeasible.empty()) {
      dropped_.push_back(DroppedPoint{cells_[cell].name, "", m.infeasible});
    } else if (m.trial) {
      for (PlannedTrial& t : impl_->per_seed(*m.trial)) static_trials_.push_back(std::move(t));
    }
  };

  for (std::size_t cell = 0; cell < cells_.size(); ++cell) {
    const std::vector<Axis>& ax = impl_->axes(cell);
    if (study.strategy == Strategy::grid) {
      // Every combination, the last axis varying fastest.
      Point p(ax.size(), 0);
      while (true) {
        const auto values = impl_->point_values(cell, p);
        const std::string text = impl_->point_text(cell, values);
        const Materialised m = impl_->materialise(cell, values, text);
        take(cell, m);
        if (!m.infeasible.empty()) dropped_.back().point = text;
        std::size_t k = ax.size();
        while (k > 0 && ++p[k - 1] == ax[k - 1].values.size()) p[--k] = 0;
        if (k == 0) break;
      }
    } else if (study.strategy == Strategy::halton) {
      // Point i (1-based) takes coordinate radical_inverse(i, prime_k) on axis k: a continuous range
      // maps it into [min, max] (log-uniformly when log), a list picks value floor(u * n).
      const auto primes = first_primes(ax.size());
      for (int i = 1; i <= study.halton_points; ++i) {
        std::vector<YamlNode> values;
        for (std::size_t k = 0; k < ax.size(); ++k) {
          const double u = radical_inverse(static_cast<std::uint64_t>(i), primes[k]);
          const Axis& a = ax[k];
          if (a.continuous) {
            double v = a.log ? std::exp(std::log(a.min) + u * (std::log(a.max) - std::log(a.min)))
                             : a.min + u * (a.max - a.min);
            values.push_back(
                scalar_node(a.integer ? std::to_string(std::llround(v)) : config::format_double(v), a.pos));
          } else {
            const auto n = a.values.size();
            values.push_back(a.values[std::min(n - 1, static_cast<std::size_t>(u * static_cast<double>(n)))]);
          }
        }
        const std::string text = impl_->point_text(cell, values);
        const Materialised m = impl_->materialise(cell, values, text);
        take(cell, m);
        if (!m.infeasible.empty()) dropped_.back().point = text;
      }
    } else {
      // Coordinate descent starts at the base config's value on every axis.
      impl_->starts.push_back(impl_->cd_start_point(cell, errors));
      const Point& start = impl_->starts.back();
      // The first round uses every value of every axis once: validate it now.
      if (errors.empty()) {
        report(impl_->at(cell, start).errors);
        for (std::size_t k = 0; k < ax.size(); ++k)
          for (std::size_t i = 0; i < ax[k].values.size(); ++i) {
            Point p = start;
            p[k] = i;
            report(impl_->at(cell, p).errors);
          }
      }
    }
  }
  errors.throw_if_any();
  // The same config reached twice (equal values after reparameterisation) runs once.
  std::set<std::string> ids;
  std::vector<PlannedTrial> unique;
  for (PlannedTrial& t : static_trials_)
    if (ids.insert(t.id).second) unique.push_back(std::move(t));
  static_trials_ = std::move(unique);
  if (study.halving.keep > 0) {
    if (study.strategy == Strategy::coordinate_descent) {
      // The first round of every cell: around the base point, the same points at every ratio.
      for (std::size_t c = 0; c < cells_.size(); ++c) {
        const CdRound first = cd_round(c, {});
        halving_trials_.insert(halving_trials_.end(), first.todo.begin(), first.todo.end());
      }
    } else {
      halving_trials_ = static_trials_;
    }
  }
}

Planner::~Planner() = default;

config::TrialConfig Planner::cell_base(std::size_t cell) const {
  ErrorList errors;
  schema::Reader r(errors);
  config::TrialConfig cfg = impl_->read(impl_->cell_docs.at(cell), r);
  cfg.seed = study_.seeds.front();
  const Cell& c = cells_[cell];
  if (c.data_ratio > 0 && errors.empty()) {
    try {
      const double n = static_cast<double>(impl_->budget_params(cell, {}));
      const double per_step = static_cast<double>(cfg.train.batch_size) * cfg.task.seq_len;
      cfg.train.steps = std::max<std::int64_t>(1, std::llround(c.data_ratio * study_.tokens_per_param * n / per_step));
    } catch (const std::exception&) {
      // The planner has reported why the model cannot be built; the base keeps its own steps.
    }
  }
  return cfg;
}

const Point& Planner::cd_start(std::size_t cell) const { return impl_->starts.at(cell); }

std::vector<std::size_t> confirmed_points(const std::vector<double>& losses, double band, int max_points) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < losses.size(); ++i)
    if (std::isfinite(losses[i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return losses[a] < losses[b]; });
  std::vector<std::size_t> out;
  for (std::size_t i : order) {
    const double best = losses[order.front()];
    if (losses[i] != best && !(losses[i] < best + band)) break;
    if (max_points > 0 && out.size() == static_cast<std::size_t>(max_points)) break;
    out.push_back(i);
  }
  return out;
}

Confirmation Planner::confirmation(std::size_t cell, const ResultStore& store) const {
  Confirmation c;
  c.cell = cell;
  const Confirm& conf = study_.confirm;
  if (conf.seeds == 0) return c;
  // The candidates in plan order: one trial of each point (the template of its extra seeds) and
  // its mean loss over the search seeds.
  std::vector<const PlannedTrial*> points;
  std::vector<PlannedTrial> cd_points;
  std::vector<double> losses;
  if (study_.strategy == Strategy::coordinate_descent) {
    const CdRound round = cd_round(cell, store);
    if (!round.converged) return c;
    for (const auto& [p, loss] : round.evaluated) {
      cd_points.push_back(*impl_->at(cell, p).trial);
      losses.push_back(loss);
    }
    for (const PlannedTrial& t : cd_points) points.push_back(&t);
  } else {
    std::map<std::string, std::size_t> index;  // point -> candidate
    std::vector<double> sums;
    std::vector<int> counts;
    for (const PlannedTrial& t : static_trials_) {
      if (t.cell != cell) continue;
      const auto done = store.find(t.id);
      if (done == store.end()) return c;  // the cell's search is still running
      const auto [it, inserted] = index.emplace(t.point, points.size());
      if (inserted) {
        points.push_back(&t);
        sums.push_back(0);
        counts.push_back(0);
      }
      sums[it->second] += std::isfinite(done->second) ? done->second : std::numeric_limits<double>::infinity();
      ++counts[it->second];
    }
    for (std::size_t i = 0; i < points.size(); ++i) losses.push_back(sums[i] / counts[i]);
  }
  c.ready = true;
  const std::vector<std::size_t> chosen = confirmed_points(losses, conf.band, conf.max_points);
  if (!chosen.empty()) c.best_loss = losses[chosen.front()];
  for (std::size_t i : chosen) {
    c.points.push_back(points[i]->point);
    for (PlannedTrial& t : impl_->with_seeds(*points[i], conf.extra_seeds)) {
      t.confirmation = true;
      c.trials.push_back(std::move(t));
    }
  }
  return c;
}

std::size_t Planner::max_confirmation_trials() const {
  const Confirm& conf = study_.confirm;
  std::size_t total = 0;
  for (std::size_t cell = 0; cell < cells_.size() && conf.seeds > 0; ++cell) {
    // The cell's points: those planned (grid, Halton), every combination of axis values (CD).
    std::size_t n = 1;
    if (study_.strategy == Strategy::coordinate_descent) {
      for (const Axis& a : impl_->axes(cell)) n *= a.values.size();
    } else {
      std::set<std::string> seen;
      for (const PlannedTrial& t : static_trials_)
        if (t.cell == cell) seen.insert(t.point);
      n = seen.size();
    }
    if (conf.max_points > 0) n = std::min(n, static_cast<std::size_t>(conf.max_points));
    total += n * conf.extra_seeds.size();
  }
  return total;
}

}  // namespace expt::experiments
