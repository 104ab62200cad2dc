#include "experiments/study/study.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "core/config/canonical.hpp"
#include "core/config/schema.hpp"
#include "core/config/text.hpp"
#include "core/config/trial_schema.hpp"
#include "experiments/study/study_schema.hpp"

namespace expt::experiments {

using config::cat;
using config::ErrorList;
using config::Position;
using config::YamlEntry;
using config::YamlNode;
namespace schema = config::schema;

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::grid:
      return "grid";
    case Strategy::halton:
      return "halton";
    case Strategy::coordinate_descent:
      return "coordinate_descent";
  }
  return "grid";
}

namespace {

bool is_number(const YamlNode& n) {
  return n.kind == YamlNode::Kind::scalar && n.plain &&
         (config::is_integer_text(n.text) || config::is_float_text(n.text));
}

YamlNode scalar_node(std::string text, const Position& pos) {
  YamlNode n;
  n.kind = YamlNode::Kind::scalar;
  n.plain = true;
  n.text = std::move(text);
  n.pos = pos;
  return n;
}

std::vector<std::string> split_path(const std::string& key) {
  std::vector<std::string> parts;
  std::string part;
  for (char c : key) {
    if (c == '.') {
      parts.push_back(part);
      part.clear();
    } else {
      part += c;
    }
  }
  parts.push_back(part);
  return parts;
}

// A range {min, max, num, log}: num evenly spaced points from min to max inclusive, or
// geometrically spaced when log; integer ranges round each point and drop repeats.
void read_range(const YamlNode& node, const std::string& path, Strategy strategy, Axis& axis, schema::Reader& r) {
  RangeReading g;
  range_table().read(node, g, path, r);
  bool ok = g.ok;
  if (g.min == nullptr || g.max == nullptr) {
    r.error(node.pos, path, "a range needs both min and max");
    ok = false;
  }
  if (!g.num_given && strategy != Strategy::halton) {
    r.error(node.pos, path,
            cat("a range needs `num` (the number of grid points) for strategy ", strategy_name(strategy),
                "; only halton samples a range continuously"));
    ok = false;
  }
  if (!ok) return;
  axis.min = g.min_value;
  axis.max = g.max_value;
  axis.log = g.log;
  const int count = g.num;
  const YamlNode* min = g.min;
  const std::string max_path = schema::join_path(path, "max");
  const std::string min_path = schema::join_path(path, "min");
  axis.integer = config::is_integer_text(min->text) && config::is_integer_text(g.max->text);
  if (axis.max < axis.min) {
    r.error(g.max->pos, max_path,
            cat("max (", schema::show(axis.max), ") is below min (", schema::show(axis.min), ")"));
    return;
  }
  if (axis.log && axis.min <= 0) {
    r.error(min->pos, min_path, cat("a log range needs min > 0, got ", schema::show(axis.min)));
    return;
  }
  if (!g.num_given) {
    axis.continuous = true;
    return;
  }
  for (int i = 0; i < count; ++i) {
    const double t = count == 1 ? 0.0 : static_cast<double>(i) / (count - 1);
    double v = axis.log ? std::exp(std::log(axis.min) + t * (std::log(axis.max) - std::log(axis.min)))
                        : axis.min + t * (axis.max - axis.min);
    // The ends are exactly what was written, whatever exp/log rounding does.
    if (i == 0) v = axis.min;
    if (i == count - 1 && count > 1) v = axis.max;
    std::string text = axis.integer ? std::to_string(std::llround(v)) : config::format_double(v);
    bool repeated = false;
    for (const YamlNode& prev : axis.values) repeated = repeated || prev.text == text;
    if (!repeated) axis.values.push_back(scalar_node(std::move(text), node.pos));
  }
}

std::optional<Axis> read_axis(const YamlEntry& e, const std::string& space_path, Strategy strategy, bool have_scales,
                              schema::Reader& r) {
  const std::string path = schema::join_path(space_path, e.key);
  Axis axis;
  axis.key = e.key;
  axis.path = path;
  axis.pos = e.key_pos;
  axis.target = split_path(e.key);
  for (const std::string& part : axis.target) {
    if (part.empty()) {
      r.error(e.key_pos, path, "an axis is a dotted trial-config key such as optimizer.lr");
      return std::nullopt;
    }
  }
  std::string& leaf = axis.target.back();
  if (leaf.rfind("one_minus_", 0) == 0 && leaf.size() > 10) {
    leaf = leaf.substr(10);
    axis.one_minus = true;
  }
  const std::string target = [&] {
    std::string t;
    for (const std::string& p : axis.target) t = schema::join_path(t, p);
    return t;
  }();
  if (target == "seed") {
    r.error(e.key_pos, path, "seeds are searched with search.seeds, not as an axis");
    return std::nullopt;
  }
  if (target == "optimizer.type") {
    r.error(e.key_pos, path, "optimizers are searched with search.optimizers, not as an axis");
    return std::nullopt;
  }
  if (target == "train.ranks" || target == "out") {
    r.error(e.key_pos, path, cat(target, " is set by the sweep (sweep.ranks_per_trial, the sweep directory)"));
    return std::nullopt;
  }
  if (target == "train.steps" && have_scales) {
    r.error(e.key_pos, path, "train.steps is derived from scales (data ratio x tokens_per_param); search the ratio");
    return std::nullopt;
  }
  const YamlNode& v = e.value;
  if (v.kind == YamlNode::Kind::sequence) {
    if (v.items.empty()) {
      r.error(v.pos, path, "an axis needs at least one value");
      return std::nullopt;
    }
    std::set<std::string> seen;
    for (const YamlNode& item : v.items) {
      if (item.kind != YamlNode::Kind::scalar) {
        r.error(item.pos, path, cat("axis values are scalars, got ", config::describe_node(item)));
        return std::nullopt;
      }
      if (axis.one_minus && !is_number(item)) {
        r.error(item.pos, path, cat("a one_minus_ axis takes numbers, got ", config::describe_node(item)));
        return std::nullopt;
      }
      if (!seen.insert(item.text).second) {
        r.error(item.pos, path, cat("value ", item.text, " is listed twice"));
        return std::nullopt;
      }
      axis.values.push_back(item);
    }
  } else if (v.kind == YamlNode::Kind::mapping) {
    ErrorList local;
    schema::Reader lr(local);
    read_range(v, path, strategy, axis, lr);
    if (!local.empty()) {
      for (const config::ConfigError& err : local.sorted())
        r.error(Position{err.file, 0, err.line, err.col}, err.key_path, err.message);
      return std::nullopt;
    }
  } else {
    r.error(v.pos, path,
            cat("an axis is a list of values or a range {min, max, num, log}, got ", config::describe_node(v)));
    return std::nullopt;
  }
  return axis;
}

void read_space(const YamlNode& node, const std::string& path, Strategy strategy, bool have_scales,
                std::vector<Axis>& axes, schema::Reader& r) {
  if (node.kind == YamlNode::Kind::null) return;
  if (node.kind != YamlNode::Kind::mapping) {
    r.error(node.pos, path, cat("expected a mapping of key paths to values, got ", config::describe_node(node)));
    return;
  }
  for (const YamlEntry& e : node.entries) {
    auto axis = read_axis(e, path, strategy, have_scales, r);
    if (!axis) continue;
    bool duplicate = false;
    for (const Axis& a : axes) {
      if (a.target == axis->target) {
        r.error(e.key_pos, schema::join_path(path, e.key),
                cat("this key is already searched by axis ", a.key, " at line ", std::to_string(a.pos.line)));
        duplicate = true;
      }
    }
    if (!duplicate) axes.push_back(std::move(*axis));
  }
}

// compare: {key: [values]}: each key read as a list axis would be (the same forbidden keys), as a
// dimension of cells instead of a searched one.
void read_compare(const YamlNode& node, bool have_scales, std::vector<CompareKey>& out, schema::Reader& r) {
  if (node.kind == YamlNode::Kind::null) return;
  if (node.kind != YamlNode::Kind::mapping) {
    r.error(node.pos, "compare",
            cat("expected a mapping of key paths to lists of values, got ", config::describe_node(node)));
    return;
  }
  for (const YamlEntry& e : node.entries) {
    const std::string path = schema::join_path("compare", e.key);
    if (e.value.kind != YamlNode::Kind::sequence) {
      r.error(e.value.pos, path, cat("a compared key takes a list of values, got ", config::describe_node(e.value)));
      continue;
    }
    auto axis = read_axis(e, "compare", Strategy::grid, have_scales, r);
    if (!axis) continue;
    if (axis->one_minus) {
      r.error(e.key_pos, path, "compare takes the trial key itself, not a one_minus_ form");
      continue;
    }
    out.push_back(CompareKey{axis->key, axis->target, axis->pos, axis->values});
  }
}

// Whether two trial key paths set a common key: equal, or one is a section holding the other.
bool overlaps(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  return std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin());
}

std::string dotted(const std::vector<std::string>& path) {
  std::string s;
  for (const std::string& p : path) s = schema::join_path(s, p);
  return s;
}

// The leaf keys a partial section sets, each as its path from the trial config's root.
void leaf_paths(const YamlNode& node, const std::vector<std::string>& prefix,
                std::vector<std::vector<std::string>>& out) {
  if (node.kind != YamlNode::Kind::mapping) {
    out.push_back(prefix);
    return;
  }
  for (const YamlEntry& e : node.entries) {
    std::vector<std::string> p = prefix;
    p.push_back(e.key);
    leaf_paths(e.value, p, out);
  }
}

// A key set by two parts of a study is an error before anything runs: an axis over a key a scale
// model sets would run the axis's values under the model's name (the trials of cell muon/gla/x1
// would be DeltaNet's), and a compared key set elsewhere would make the compared value a lie.
void check_overlaps(const Study& s, schema::Reader& r) {
  struct Setter {
    std::vector<std::string> path;
    std::string who;  // "scales.models.gla (line 14)"
  };
  std::vector<Setter> model_keys;
  for (const ScaleModel& m : s.models) {
    std::vector<std::vector<std::string>> leaves;
    leaf_paths(m.model, {"model"}, leaves);
    for (auto& l : leaves)
      model_keys.push_back(Setter{l, cat("scales.models.", m.tag, " (line ", std::to_string(m.pos.line), ")")});
  }
  std::set<std::string> reported;  // a study-wide axis is in every optimizer's list
  const auto report = [&](const Position& pos, const std::string& path, const std::string& message) {
    if (reported.insert(cat(std::to_string(pos.line), ":", std::to_string(pos.col), " ", path)).second)
      r.error(pos, path, message);
  };
  for (const OptimizerSearch& os : s.optimizers)
    for (const Axis& a : os.axes)
      for (const Setter& m : model_keys)
        if (overlaps(a.target, m.path))
          report(a.pos, a.path,
                 cat("overrides ", dotted(m.path), ", which ", m.who,
                     " sets: its cells would run this axis's values under that model's name; to compare values "
                     "without tuning over them, list them under `compare`, not as an axis or a scale model"));
  for (std::size_t i = 0; i < s.compare.size(); ++i) {
    const CompareKey& c = s.compare[i];
    const std::string path = schema::join_path("compare", c.key);
    for (std::size_t j = 0; j < i; ++j)
      if (overlaps(c.target, s.compare[j].target)) report(c.pos, path, cat("overlaps compare.", s.compare[j].key));
    for (const OptimizerSearch& os : s.optimizers)
      for (const Axis& a : os.axes)
        if (overlaps(c.target, a.target))
          report(c.pos, path,
                 cat("is also searched by ", a.path, " (line ", std::to_string(a.pos.line),
                     "): a key is either compared or tuned"));
    for (const Setter& m : model_keys)
      if (overlaps(c.target, m.path)) report(c.pos, path, cat("overlaps ", dotted(m.path), ", which ", m.who, " sets"));
    for (const OptimizerSearch& os : s.optimizers)
      for (const YamlEntry& e : os.base.entries)
        if (overlaps(c.target, {"optimizer", e.key}))
          report(c.pos, path,
                 cat("overlaps optimizer.", e.key, ", which search.optimizers.", os.name, ".base sets (line ",
                     std::to_string(e.key_pos.line), ")"));
  }
}

// Validates the base config as the trial schema does (types, domains, unknown and inapplicable
// keys), for one optimizer and one model size; the keys the sweep sets itself are refused.
void check_base(const YamlNode& base, bool have_scales, bool have_seeds, schema::Reader& r) {
  struct Forbidden {
    std::vector<std::string> path;
    bool when;
    const char* why;
  };
  const Forbidden forbidden[] = {
      {{"out"}, true, "is set by the sweep (<sweep dir>/trials/<trial id>)"},
      {{"train", "ranks"}, true, "is set by the sweep from sweep.ranks_per_trial"},
      {{"train", "steps"}, have_scales, "is derived from scales (data ratio x tokens_per_param); remove it"},
      {{"seed"}, have_seeds, "conflicts with search.seeds; list every seed there"},
  };
  for (const Forbidden& f : forbidden) {
    if (!f.when) continue;
    const YamlNode* n = &base;
    const YamlEntry* found = nullptr;
    for (const std::string& part : f.path) {
      found = nullptr;
      if (n->kind != YamlNode::Kind::mapping) break;
      for (const YamlEntry& e : n->entries)
        if (e.key == part) found = &e;
      if (found == nullptr) break;
      n = &found->value;
    }
    if (found != nullptr) {
      std::string p = "base";
      for (const std::string& part : f.path) p = schema::join_path(p, part);
      r.error(found->key_pos, p, cat(p, " ", f.why));
    }
  }
}

// Adds the errors of `part` to `out`, each once (a base error shows up for every optimizer).
void add_unique(const ErrorList& part, const std::string& filename, ErrorList& out, std::set<std::string>& seen) {
  for (const config::ConfigError& e : part.sorted())
    if (seen.insert(e.str()).second)
      out.add(Position{e.file, e.file == filename ? 0 : 1, e.line, e.col}, e.key_path, e.message);
}

}  // namespace

Study parse_study(const std::string& text, const std::string& filename, const std::vector<std::string>& overrides) {
  ErrorList errors;
  std::optional<YamlNode> root = config::load_yaml_document(text, filename, 0, errors);
  std::vector<config::Override> parsed;
  for (std::size_t i = 0; i < overrides.size(); ++i)
    if (auto ov = config::parse_override(overrides[i], static_cast<int>(i) + 1, errors))
      parsed.push_back(std::move(*ov));
  if (!root) errors.throw_if_any();
  if (root->kind != YamlNode::Kind::mapping) {
    errors.add(
        root->kind == YamlNode::Kind::null ? Position{filename, 0, 0, 0} : root->pos, "",
        cat("a study is a mapping with keys study, base, search, scales, sweep; got ", config::describe_node(*root)));
    errors.throw_if_any();
  }
  for (const config::Override& ov : parsed) config::apply_override(*root, ov);

  schema::Reader r(errors);
  const auto entry_of = [](const YamlNode& node, const std::string& key) -> const YamlEntry* {
    for (const YamlEntry& e : node.entries)
      if (e.key == key) return &e;
    return nullptr;
  };
  const auto is_section = [](const YamlEntry* e) {
    return e != nullptr && (e->value.kind == YamlNode::Kind::mapping || e->value.kind == YamlNode::Kind::null);
  };
  const YamlEntry* base = entry_of(*root, "base");
  const YamlEntry* search = entry_of(*root, "search");
  const YamlEntry* scales = entry_of(*root, "scales");

  // Every key through the study tables (experiments/study/study_schema.hpp), then what they
  // cannot check alone.
  StudyReading reading;
  reading.file = filename;
  reading.text = text;
  reading.have_scales = scales != nullptr;  // whether train.steps may be searched
  study_table().read(*root, reading, "", r);

  if (entry_of(*root, "study") == nullptr)
    r.error(Position{filename, 0, 1, 1}, "study", "missing key 'study' (the study's name)");
  if (base == nullptr)
    r.error(Position{filename, 0, 1, 1}, "base", "missing key 'base' (the trial config every trial starts from)");
  if (is_section(scales)) {
    if (!reading.models_given)
      r.error(scales->key_pos, "scales.models",
              "scales need models: a mapping of size names to partial model sections ({d_model: 64, ...})");
    if (!reading.data_ratios_given) reading.data_ratios = {1.0};
    if (reading.branching && reading.data_ratios.size() < 2)
      r.error(reading.branching_pos, "scales.branching",
              "branching shares a trunk between data ratios: list at least two in scales.data_ratios");
  }
  const bool have_scales = reading.have_scales;
  const bool have_seeds = reading.have_seeds;
  std::vector<Axis> common_axes;
  if (search == nullptr) {
    r.error(Position{filename, 0, 1, 1}, "search", "missing key 'search' (strategy and space)");
  } else if (is_section(search)) {
    const YamlNode& sec = search->value;
    if (entry_of(sec, "strategy") == nullptr)
      r.error(search->key_pos, "search.strategy", "missing key 'strategy' (grid, halton or coordinate_descent)");
    // Keys of one strategy under another (the table left them unread).
    const std::pair<const char*, Strategy> strategy_keys[] = {{"points", Strategy::halton},
                                                              {"tolerance", Strategy::coordinate_descent},
                                                              {"recentre_min_saving", Strategy::coordinate_descent}};
    for (const auto& [key, owner] : strategy_keys) {
      const YamlEntry* e = entry_of(sec, key);
      if (e != nullptr && reading.strategy_ok && reading.strategy != owner)
        r.error(e->key_pos, schema::join_path("search", key),
                cat(key, " applies to strategy ", strategy_name(owner), " only (this study uses ",
                    strategy_name(reading.strategy), ")"));
    }
    if (entry_of(sec, "points") == nullptr && reading.strategy_ok && reading.strategy == Strategy::halton)
      r.error(search->key_pos, "search.points", "strategy halton needs `points` (how many points to draw)");
    if (reading.strategy_ok) {
      if (reading.space_node != nullptr)
        read_space(*reading.space_node, "search.space", reading.strategy, have_scales, common_axes, r);
      if (reading.optimizers_node != nullptr) {
        const YamlNode& opts = *reading.optimizers_node;
        if (opts.kind != YamlNode::Kind::mapping || opts.entries.empty()) {
          r.error(opts.pos, "search.optimizers",
                  "expected a mapping of optimizer types to {base: {...}, space: {...}}");
        } else {
          for (const YamlEntry& o : opts.entries) {
            const std::string opath = "search.optimizers." + o.key;
            if (o.value.kind != YamlNode::Kind::mapping && o.value.kind != YamlNode::Kind::null) {
              r.error(o.value.pos, opath, cat("expected a mapping, got ", config::describe_node(o.value)));
              continue;
            }
            OptimizerSearchReading osr;
            optimizer_search_table().read(o.value, osr, opath, r);
            OptimizerSearch os;
            os.name = o.key;
            os.pos = o.key_pos;
            os.base = osr.base;
            os.axes = common_axes;
            if (osr.space != nullptr)
              read_space(*osr.space, schema::join_path(opath, "space"), reading.strategy, have_scales, os.axes, r);
            reading.optimizers.push_back(std::move(os));
          }
        }
      } else {
        OptimizerSearch os;
        os.name = "adamw";
        os.pos = base != nullptr ? base->key_pos : Position{filename, 0, 1, 1};
        if (const YamlNode* opt = reading.base.find("optimizer"))
          if (const YamlNode* t = opt->find("type"); t != nullptr && t->kind == YamlNode::Kind::scalar) {
            os.name = t->text;
            os.pos = t->pos;
          }
        os.axes = common_axes;
        reading.optimizers.push_back(std::move(os));
      }
    }
  }
  if (reading.compare_node != nullptr) read_compare(*reading.compare_node, have_scales, reading.compare, r);
  check_overlaps(reading, r);
  Study study = std::move(static_cast<Study&>(reading));

  // The base, as every optimizer and model size sees it, through the trial schema.
  if (study.base.kind == YamlNode::Kind::mapping) {
    check_base(study.base, have_scales, have_seeds, r);
    std::set<std::string> seen;
    std::vector<const ScaleModel*> sizes;
    for (const ScaleModel& m : study.models) sizes.push_back(&m);
    if (sizes.empty()) sizes.push_back(nullptr);
    for (const OptimizerSearch& os : study.optimizers) {
      for (const ScaleModel* size : sizes) {
        YamlNode doc = study.base;
        config::apply_override(doc, {{"optimizer", "type"}, scalar_node(os.name, os.pos)});
        for (const YamlEntry& e : os.base.entries) config::apply_override(doc, {{"optimizer", e.key}, e.value});
        if (size != nullptr)
          for (const YamlEntry& e : size->model.entries) config::apply_override(doc, {{"model", e.key}, e.value});
        ErrorList part;
        schema::Reader pr(part);
        config::TrialConfig cfg;
        config::trial_table().read(doc, cfg, "", pr);
        add_unique(part, filename, errors, seen);
      }
    }
    if (!have_seeds) {
      std::uint64_t seed = 0;
      if (const YamlNode* s = study.base.find("seed")) {
        ErrorList ignored;  // reported above with the rest of the base
        schema::Reader ir(ignored);
        schema::read_value(*s, "base.seed", schema::at_least(0), seed, ir);
      }
      study.seeds = {seed};
    }
  }
  if (const YamlNode* node = reading.confirm_node; node != nullptr) {
    Confirm& c = study.confirm;
    c.pos = node->pos;
    // Not a mapping: the confirm table has reported it.
    const bool mapping = node->kind == YamlNode::Kind::mapping || node->kind == YamlNode::Kind::null;
    if (mapping && reading.confirm_seeds_node == nullptr) {
      r.error(node->pos, "search.confirm.seeds",
              "search.confirm needs `seeds`: how many seeds a confirmed point has in all (e.g. {seeds: 3})");
    } else if (c.seeds > 0 && static_cast<std::size_t>(c.seeds) <= study.seeds.size()) {
      r.error(reading.confirm_seeds_node->pos, "search.confirm.seeds",
              cat("must exceed the number of search.seeds (", std::to_string(study.seeds.size()),
                  "): it counts the seeds a confirmed point has in all, the search seeds included"));
    } else if (c.seeds > 0 && !study.seeds.empty()) {
      // The extra seeds: the integers after the largest search seed.
      const std::uint64_t last = *std::max_element(study.seeds.begin(), study.seeds.end());
      for (std::size_t i = study.seeds.size(); i < static_cast<std::size_t>(c.seeds); ++i)
        c.extra_seeds.push_back(last + 1 + (i - study.seeds.size()));
    }
    if (c.band_is_tolerance) c.band = study.tolerance;
  }
  if (const YamlNode* node = reading.halving_node; node != nullptr) {
    study.halving.pos = node->pos;
    const bool mapping = node->kind == YamlNode::Kind::mapping || node->kind == YamlNode::Kind::null;
    if (mapping && reading.halving_keep_node == nullptr)
      r.error(node->pos, "search.halving.keep",
              "search.halving needs `keep`: the fraction of points that continue at each rung (e.g. {keep: 0.34})");
    if (!study.branching)
      r.error(node->pos, "search.halving",
              "successive halving compares points at the end of a cooldown, a finished WSD branch: it needs "
              "scales.branching: wsd (and a wsd schedule)");
  }
  errors.throw_if_any();
  return study;
}

Study load_study(const std::string& path, const std::vector<std::string>& overrides) {
  const auto fail = [&](const std::string& message) {
    throw config::ConfigErrors({config::ConfigError{path, 0, 0, "", message}});
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("is a directory, not a study file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(std::string("cannot open the study file: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_study(text.str(), path, overrides);
}

}  // namespace expt::experiments
