// The planner's internals, shared by its files: a cell's document, and the materialisation of a
// point (one value per axis) into a validated trial config, cached per (cell, point). plan.cpp
// builds cells and the grid and Halton trials; coordinate_descent.cpp plans coordinate descent's
// rounds on the same materialised points. Not part of the planner's interface (plan.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/config/schema.hpp"
#include "core/config/text.hpp"
#include "core/config/trial_schema.hpp"
#include "core/data/task.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "experiments/study/plan.hpp"
#include "optimizers/schedule.hpp"

namespace expt::experiments {

using config::cat;
using config::ErrorList;
using config::Position;
using config::YamlEntry;
using config::YamlNode;
namespace schema = config::schema;

inline YamlNode scalar_node(std::string text, const Position& pos) {
  YamlNode n;
  n.kind = YamlNode::Kind::scalar;
  n.plain = true;
  n.text = std::move(text);
  n.pos = pos;
  return n;
}

// The value an axis writes into the trial config: as written, or 1 - v for a one_minus_ axis.
inline YamlNode target_value(const Axis& axis, const YamlNode& v) {
  if (!axis.one_minus) return v;
  return scalar_node(config::format_double(1.0 - config::float_value(v.text).value_or(0.0)), v.pos);
}

inline std::string target_path(const Axis& axis) {
  std::string t;
  for (const std::string& p : axis.target) t = schema::join_path(t, p);
  return t;
}

inline std::vector<std::uint64_t> first_primes(std::size_t n) {
  std::vector<std::uint64_t> primes;
  for (std::uint64_t c = 2; primes.size() < n; ++c) {
    bool prime = true;
    for (std::uint64_t p : primes) prime = prime && c % p != 0;
    if (prime) primes.push_back(c);
  }
  return primes;
}

inline std::string ratio_text(double r) { return schema::show(r); }

// The outcome of turning one point of one cell into a config.
struct Materialised {
  std::optional<PlannedTrial> trial;  // the point's trial for the first seed
  std::string infeasible;             // non-empty: dropped for this reason
  std::vector<config::ConfigError> errors;
};

struct Planner::Impl {
  const Study& study;
  const std::vector<Cell>& cells;
  std::vector<YamlNode> cell_docs;    // base + optimizer type + optimizer base + model size + compared values
  std::vector<YamlNode> budget_docs;  // the same without the compared values: the model whose N sets the steps
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

  // N (non-embedding) of the model whose size sets a cell's steps: the cell's model with the axis
  // `values` applied (none: the cell's base) but without the compared values, so every compared
  // value trains on the same tokens (docs/sweeps.md "Comparisons").
  std::int64_t budget_params(std::size_t cell, const std::vector<YamlNode>& values) {
    YamlNode doc = budget_docs[cell];
    const std::vector<Axis>& ax = axes(cell);
    for (std::size_t k = 0; k < values.size(); ++k)
      config::apply_override(doc, {ax[k].target, target_value(ax[k], values[k])});
    ErrorList errors;  // the base and every point are validated with the compared values applied
    schema::Reader r(errors);
    return count_params(read(doc, r)).second;
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
    std::int64_t budget_n = 0;
    try {
      counts = count_params(cfg);
      budget_n = study.compare.empty() ? counts.second : budget_params(cell, values);
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
      const double tokens = c.data_ratio * study.tokens_per_param * static_cast<double>(budget_n);
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
    if (study.branching) check_branching(doc, cfg, r);
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
    if (study.branching && c.data_ratio > 0) {
      t.trunk_key = trunk_key_of(cfg);
      t.branch_step = optim::wsd_decay_start(cfg.schedule, cfg.train.steps);
      // This point's steps at each smaller ratio (the same N), and there its cooldown start.
      const double per_step = static_cast<double>(cfg.train.batch_size) * cfg.task.seq_len;
      for (double ratio : study.data_ratios) {
        if (ratio >= c.data_ratio) continue;
        const std::int64_t s = std::max<std::int64_t>(
            1, std::llround(ratio * study.tokens_per_param * static_cast<double>(budget_n) / per_step));
        if (s >= cfg.train.steps || optim::warmup_steps(cfg.schedule, s) >= s) continue;
        const std::int64_t fork = optim::wsd_decay_start(cfg.schedule, s);
        if (fork >= 1 && fork <= t.branch_step) t.fork_points.push_back(fork);
      }
      std::sort(t.fork_points.begin(), t.fork_points.end());
      t.fork_points.erase(std::unique(t.fork_points.begin(), t.fork_points.end()), t.fork_points.end());
    }
    m.trial = std::move(t);
    return m;
  }

  // scales.branching: wsd needs every trial's first updates to be independent of train.steps: a
  // wsd schedule whose warmup is a number of steps (eval_every, checkpoint_every, data order and
  // seeds are by step already). Errors at the key's position in the study file (an axis value, the
  // base, or scales.branching when the key is left at its default).
  void check_branching(const YamlNode& doc, const config::TrialConfig& cfg, schema::Reader& r) const {
    const auto at = [&](const char* key) {
      const YamlNode* sched = doc.find("schedule");
      const YamlNode* n = sched != nullptr ? sched->find(key) : nullptr;
      return n != nullptr ? n->pos : study.branching_pos;
    };
    if (cfg.schedule.type != "wsd")
      r.error(at("type"), "schedule.type",
              cat("scales.branching: wsd needs schedule.type wsd (a branch forks at its cooldown start), got ",
                  cfg.schedule.type));
    else if (cfg.schedule.warmup > 0 && cfg.schedule.warmup < 1)
      r.error(at("warmup"), "schedule.warmup",
              cat("scales.branching: wsd needs the warmup in steps (0 or a whole number >= 1), got the fraction ",
                  schema::show(cfg.schedule.warmup),
                  " of train.steps: the learning rate of the shared first updates would differ between data ratios"));
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

  // Coordinate descent's starting point in `cell`: the base config's value on every axis; an axis
  // without that value among its own is reported in `errors` (experiments/study/coordinate_descent.cpp).
  Point cd_start_point(std::size_t cell, ErrorList& errors) const;

  // The trials of one point, one per seed (by default the search seeds).
  std::vector<PlannedTrial> per_seed(const PlannedTrial& first) const { return with_seeds(first, study.seeds); }
  std::vector<PlannedTrial> with_seeds(const PlannedTrial& first, const std::vector<std::uint64_t>& seeds) const {
    std::vector<PlannedTrial> out;
    for (std::uint64_t seed : seeds) {
      PlannedTrial t = first;
      t.config.seed = seed;
      t.seed = seed;
      // first.id is the hash of first.config, so (first.id, seed) names t.config. A worker rebuilds
      // its Scheduler, and with it every coordinate-descent round, before each trial; hashing the
      // same configs again dominated that rebuild (`expt worker` on the finished 575-trial optimizer
      // study: 2.5 CPU-s without this cache, 0.4 with it).
      auto [it, fresh] = seed_ids.try_emplace({first.id, seed});
      if (fresh)
        it->second = {config::config_hash(t.config), first.trunk_key.empty() ? "" : trunk_key_of(t.config)};
      t.id = it->second.first;
      t.trunk_key = it->second.second;
      out.push_back(std::move(t));
    }
    return out;
  }
  // (first trial's id, seed) -> that seed's (id, trunk key); see with_seeds.
  mutable std::map<std::pair<std::string, std::uint64_t>, std::pair<std::string, std::string>> seed_ids;
};

}  // namespace expt::experiments
