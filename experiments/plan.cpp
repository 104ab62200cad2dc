#include "experiments/plan.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <stdexcept>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/config/schema.hpp"
#include "core/config/text.hpp"
#include "core/config/trial_schema.hpp"
#include "core/data/task.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"

namespace expt::experiments {

using config::cat;
using config::ErrorList;
using config::Position;
using config::YamlEntry;
using config::YamlNode;
namespace schema = config::schema;

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

namespace {

YamlNode scalar_node(std::string text, const Position& pos) {
  YamlNode n;
  n.kind = YamlNode::Kind::scalar;
  n.plain = true;
  n.text = std::move(text);
  n.pos = pos;
  return n;
}

// The value an axis writes into the trial config: as written, or 1 - v for a one_minus_ axis.
YamlNode target_value(const Axis& axis, const YamlNode& v) {
  if (!axis.one_minus) return v;
  return scalar_node(config::format_double(1.0 - config::float_value(v.text).value_or(0.0)), v.pos);
}

std::string target_path(const Axis& axis) {
  std::string t;
  for (const std::string& p : axis.target) t = schema::join_path(t, p);
  return t;
}

std::vector<std::uint64_t> first_primes(std::size_t n) {
  std::vector<std::uint64_t> primes;
  for (std::uint64_t c = 2; primes.size() < n; ++c) {
    bool prime = true;
    for (std::uint64_t p : primes) prime = prime && c % p != 0;
    if (prime) primes.push_back(c);
  }
  return primes;
}

std::string ratio_text(double r) { return schema::show(r); }

// The outcome of turning one point of one cell into a config.
struct Materialised {
  std::optional<PlannedTrial> trial;  // the point's trial for the first seed
  std::string infeasible;             // non-empty: dropped for this reason
  std::vector<config::ConfigError> errors;
};

}  // namespace

struct Planner::Impl {
  const Study& study;
  const std::vector<Cell>& cells;
  std::vector<YamlNode> cell_docs;  // base + optimizer type + optimizer base + model size
  std::vector<Point> starts;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> param_counts;  // model+task -> (all, non-embed)
  mutable std::map<std::pair<std::size_t, Point>, Materialised> cache;

  Impl(const Study& s, const std::vector<Cell>& c) : study(s), cells(c) {}

  const std::vector<Axis>& axes(std::size_t cell) const { return study.optimizers[cells[cell].optimizer].axes; }

  std::pair<std::int64_t, std::int64_t> count_params(const config::TrialConfig& cfg) {
    std::string key;
    for (const auto& [path, value] : config::flatten_config(cfg))
      if (path.rfind("model.", 0) == 0 || path.rfind("task.", 0) == 0) key += path + "=" + value + "\n";
    auto it = param_counts.find(key);
    if (it != param_counts.end()) return it->second;
    const int vocab = cfg.model.vocab_size > 0 ? cfg.model.vocab_size : data::make_task(cfg.task)->vocab_size();
    // Registering the parameters counts them; nothing is allocated.
    nn::ParameterStore<float> store;
    nn::Model<float> model(cfg.model, vocab, store);
    const auto counts = std::make_pair(model.n_params(), model.n_params_nonembed());
    param_counts.emplace(key, counts);
    return counts;
  }

  // Reads one document through the trial schema; errors at their positions in the study file.
  config::TrialConfig read(const YamlNode& doc, schema::Reader& r) const {
    config::TrialConfig cfg;
    config::trial_table().read(doc, cfg, "", r);
    cfg.train.ranks = study.ranks_per_trial;
    return cfg;
  }

  // The config of `values` (one node per axis, as written) in `cell`, for the study's first seed.
  Materialised materialise(std::size_t cell, const std::vector<YamlNode>& values, const std::string& point_text) {
    Materialised m;
    YamlNode doc = cell_docs[cell];
    const std::vector<Axis>& ax = axes(cell);
    for (std::size_t k = 0; k < ax.size(); ++k)
      config::apply_override(doc, {ax[k].target, target_value(ax[k], values[k])});
    ErrorList errors;
    schema::Reader r(errors);
    config::TrialConfig cfg = read(doc, r);
    cfg.seed = study.seeds.front();
    if (!errors.empty()) {
      m.errors = errors.sorted();
      return m;
    }
    const Cell& c = cells[cell];
    std::pair<std::int64_t, std::int64_t> counts;
    try {
      counts = count_params(cfg);
    } catch (const std::exception& e) {
      // The model or task cannot be built (an unsupported size, a missing data file). The task's
      // errors name their key ("task.paths: ..."): point at the task section then.
      const bool task_error = std::string(e.what()).rfind("task.", 0) == 0;
      const YamlNode* node = doc.find(task_error ? "task" : "model");
      const Position at = !task_error && c.model >= 0 ? study.models[static_cast<std::size_t>(c.model)].pos
                          : node != nullptr           ? node->pos
                                                      : Position{study.file, 0, 0, 0};
      m.errors.push_back(config::ConfigError{at.source, at.line, at.col, task_error ? "base.task" : "model", e.what()});
      return m;
    }
    if (c.data_ratio > 0) {
      // steps = ratio * tokens_per_param * N / (batch * seq_len): the cell's token budget in steps.
      const double tokens = c.data_ratio * study.tokens_per_param * static_cast<double>(counts.second);
      const double per_step = static_cast<double>(cfg.train.batch_size) * cfg.task.seq_len;
      cfg.train.steps = std::max<std::int64_t>(1, std::llround(tokens / per_step));
    }
    const double steps = static_cast<double>(cfg.train.steps);
    const double warmup = cfg.schedule.warmup >= 1 ? cfg.schedule.warmup : cfg.schedule.warmup * steps;
    if (cfg.schedule.warmup >= 1 && warmup > steps) {
      m.infeasible = cat("warmup ", schema::show(warmup), " steps > train.steps ", std::to_string(cfg.train.steps));
      return m;
    }
    if (cfg.schedule.type == "wsd" && warmup + cfg.schedule.decay * steps > steps * (1 + 1e-12)) {
      m.infeasible = cat("warmup ", schema::show(warmup), " + wsd decay ", schema::show(cfg.schedule.decay * steps),
                         " steps > train.steps ", std::to_string(cfg.train.steps));
      return m;
    }
    config::check_conflicts(cfg, study.file, r);
    if (!errors.empty()) {
      m.errors = errors.sorted();
      return m;
    }
    PlannedTrial t;
    t.config = cfg;
    t.id = config::config_hash(cfg);
    t.cell = cell;
    t.cell_name = c.name;
    t.optimizer = study.optimizers[c.optimizer].name;
    t.model_tag = c.model >= 0 ? study.models[static_cast<std::size_t>(c.model)].tag : "base";
    t.data_ratio = c.data_ratio;
    t.seed = cfg.seed;
    t.point = point_text;
    const auto typed = config::typed_config(cfg);
    for (std::size_t k = 0; k < ax.size(); ++k) {
      if (ax[k].one_minus) {
        t.axes.emplace_back(ax[k].key, config::float_value(values[k].text).value_or(0.0));
        continue;
      }
      const std::string path = target_path(ax[k]);
      const auto it = std::find_if(typed.begin(), typed.end(), [&](const auto& kv) { return kv.first == path; });
      if (it == typed.end()) throw std::logic_error("axis " + ax[k].key + " sets no key of the trial config");
      t.axes.emplace_back(ax[k].key, it->second);
    }
    t.n_params = counts.first;
    t.n_params_nonembed = counts.second;
    t.cost = steps * cfg.train.batch_size * static_cast<double>(counts.first);
    m.trial = std::move(t);
    return m;
  }

  std::string point_text(std::size_t cell, const std::vector<YamlNode>& values) const {
    std::string s;
    const std::vector<Axis>& ax = axes(cell);
    for (std::size_t k = 0; k < ax.size(); ++k) s += cat(k ? " " : "", ax[k].key, "=", values[k].text);
    return s;
  }

  std::vector<YamlNode> point_values(std::size_t cell, const Point& p) const {
    std::vector<YamlNode> v;
    const std::vector<Axis>& ax = axes(cell);
    for (std::size_t k = 0; k < ax.size(); ++k) v.push_back(ax[k].values[p[k]]);
    return v;
  }

  const Materialised& at(std::size_t cell, const Point& p) {
    const auto key = std::make_pair(cell, p);
    auto it = cache.find(key);
    if (it == cache.end()) {
      const auto values = point_values(cell, p);
      it = cache.emplace(key, materialise(cell, values, point_text(cell, values))).first;
    }
    return it->second;
  }

  // The trials of one point, one per seed.
  std::vector<PlannedTrial> per_seed(const PlannedTrial& first) const {
    std::vector<PlannedTrial> out;
    for (std::uint64_t seed : study.seeds) {
      PlannedTrial t = first;
      t.config.seed = seed;
      t.seed = seed;
      t.id = config::config_hash(t.config);
      out.push_back(std::move(t));
    }
    return out;
  }
};

Planner::Planner(const Study& study) : study_(study) {
  for (std::size_t o = 0; o < study.optimizers.size(); ++o) {
    const std::string& opt = study.optimizers[o].name;
    if (study.models.empty()) {
      cells_.push_back(Cell{opt, o, -1, 0});
    } else {
      for (std::size_t m = 0; m < study.models.size(); ++m)
        for (double ratio : study.data_ratios)
          cells_.push_back(
              Cell{cat(opt, "/", study.models[m].tag, "/x", ratio_text(ratio)), o, static_cast<int>(m), ratio});
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
      Point start(ax.size(), 0);
      ErrorList base_errors;
      schema::Reader br(base_errors);
      const auto base_flat = config::flatten_config(impl_->read(impl_->cell_docs[cell], br));
      const auto value_of = [](const std::vector<std::pair<std::string, std::string>>& flat, const std::string& key) {
        for (const auto& [k, v] : flat)
          if (k == key) return v;
        return std::string();
      };
      for (std::size_t k = 0; k < ax.size(); ++k) {
        const std::string key = target_path(ax[k]);
        const std::string base_value = value_of(base_flat, key);
        bool found = false;
        for (std::size_t i = 0; i < ax[k].values.size() && !found; ++i) {
          YamlNode doc = impl_->cell_docs[cell];
          config::apply_override(doc, {ax[k].target, target_value(ax[k], ax[k].values[i])});
          ErrorList e;
          schema::Reader vr(e);
          const auto flat = config::flatten_config(impl_->read(doc, vr));
          if (e.empty() && value_of(flat, key) == base_value) {
            start[k] = i;
            found = true;
          }
        }
        if (!found && !base_value.empty())
          errors.add(ax[k].pos, ax[k].key,
                     cat("coordinate descent starts at the base config, where ", key, " is ", base_value, " (",
                         cells_[cell].name, "); that value is not among this axis's values"));
      }
      impl_->starts.push_back(start);
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
      const double n = static_cast<double>(impl_->count_params(cfg).second);
      const double per_step = static_cast<double>(cfg.train.batch_size) * cfg.task.seq_len;
      cfg.train.steps = std::max<std::int64_t>(1, std::llround(c.data_ratio * study_.tokens_per_param * n / per_step));
    } catch (const std::exception&) {
      // The planner has reported why the model cannot be built; the base keeps its own steps.
    }
  }
  return cfg;
}

const Point& Planner::cd_start(std::size_t cell) const { return impl_->starts.at(cell); }

CdRound Planner::cd_round(std::size_t cell, const ResultStore& store) const {
  if (study_.strategy != Strategy::coordinate_descent)
    throw std::logic_error("cd_round: the study's strategy is not coordinate_descent");
  Impl& im = *impl_;
  const std::vector<Axis>& ax = im.axes(cell);
  CdRound round;
  round.cell = cell;
  std::set<std::string> dropped_seen;

  // neighbourhood(c) = {c} and every point one value away from c, feasible ones only.
  const auto neighbourhood = [&](const Point& c) {
    std::vector<Point> n;
    const auto add = [&](const Point& p) {
      const Materialised& m = im.at(cell, p);
      if (m.trial) {
        n.push_back(p);
      } else {
        const std::string text = im.point_text(cell, im.point_values(cell, p));
        if (dropped_seen.insert(text).second)
          round.dropped.push_back(
              DroppedPoint{cells_[cell].name, text, m.infeasible.empty() ? m.errors.front().str() : m.infeasible});
      }
    };
    add(c);
    for (std::size_t k = 0; k < ax.size(); ++k)
      for (std::size_t i = 0; i < ax[k].values.size(); ++i)
        if (i != c[k]) {
          Point p = c;
          p[k] = i;
          add(p);
        }
    return n;
  };
  // A point is done when every seed's trial is; its loss is their mean (+inf if any is +inf).
  const auto loss_of = [&](const Point& p) -> std::optional<double> {
    double sum = 0;
    for (const PlannedTrial& t : im.per_seed(*im.at(cell, p).trial)) {
      const auto it = store.find(t.id);
      if (it == store.end()) return std::nullopt;
      sum += std::isfinite(it->second) ? it->second : std::numeric_limits<double>::infinity();
    }
    return sum / static_cast<double>(study_.seeds.size());
  };
  const auto missing = [&](const Point& c) {
    std::size_t n = 0;
    for (const Point& p : neighbourhood(c)) n += loss_of(p) ? 0 : 1;
    return n;
  };

  // Replays the rounds from the start: a round whose neighbourhood is complete picks the next
  // centre (the best point done so far, or the near-best point closest to finishing when that
  // saves at least recentre_min_saving trials); the first incomplete round is the current one.
  std::map<Point, double> known;
  Point centre = cd_start(cell);
  for (;;) {
    const std::vector<Point> hood = neighbourhood(centre);
    bool complete = true;
    for (const Point& p : hood) {
      if (const auto l = loss_of(p)) {
        known[p] = *l;
      } else {
        complete = false;
        for (PlannedTrial& t : im.per_seed(*im.at(cell, p).trial))
          if (store.find(t.id) == store.end()) round.todo.push_back(std::move(t));
      }
    }
    round.centre = centre;
    if (!complete || known.empty()) {
      round.converged = known.empty() && complete;
      break;
    }
    // L* and the near-best set S (ties go to the first point in index order).
    Point best = known.begin()->first;
    for (const auto& [p, l] : known)
      if (l < known[best]) best = p;
    round.best_loss = known[best];
    std::vector<Point> near;
    for (const auto& [p, l] : known)
      if (l < round.best_loss + study_.tolerance) near.push_back(p);
    Point next = best;
    const std::size_t best_missing = missing(best);
    std::size_t fewest = best_missing;
    for (const Point& p : near) {
      const std::size_t m = missing(p);
      if (m < fewest && m + static_cast<std::size_t>(study_.recentre_min_saving) <= best_missing) {
        fewest = m;
        next = p;
      }
    }
    if (next == centre) {
      round.converged = true;
      for (const Point& p : near) round.near_best.push_back(im.point_text(cell, im.point_values(cell, p)));
      for (std::size_t k = 0; k < ax.size(); ++k) {
        const std::size_t n = ax[k].values.size();
        if (n < 2 || (centre[k] != 0 && centre[k] != n - 1)) continue;
        round.edge_alarms.push_back(cat(ax[k].key, ": the best value ", ax[k].values[centre[k]].text, " sits at the ",
                                        centre[k] == 0 ? "lower" : "upper",
                                        " edge of the axis; the optimum may lie beyond it (extend the grid)"));
      }
      break;
    }
    centre = next;
    ++round.round;
  }
  round.centre_text = im.point_text(cell, im.point_values(cell, round.centre));
  return round;
}

}  // namespace expt::experiments
