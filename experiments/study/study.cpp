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

#include "core/config/canonical.hpp"
#include "core/config/schema.hpp"
#include "core/config/text.hpp"
#include "core/config/trial_schema.hpp"

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

// Reads the entries of one study section: each known key is handed to its reader, an unknown one
// is reported with the closest valid name.
class SectionReader {
 public:
  SectionReader(const YamlNode& node, std::string path, std::vector<std::string> keys, schema::Reader& r)
      : node_(node), path_(std::move(path)), keys_(std::move(keys)), r_(r) {}

  // False (after reporting) when the section is neither a mapping nor null.
  bool check_mapping() {
    if (node_.kind == YamlNode::Kind::mapping || node_.kind == YamlNode::Kind::null) {
      for (const YamlEntry& e : node_.entries)
        if (std::find(keys_.begin(), keys_.end(), e.key) == keys_.end())
          r_.error(e.key_pos, schema::join_path(path_, e.key), schema::unknown_key_message(e.key, keys_));
      return true;
    }
    r_.error(node_.pos, path_, cat("expected a mapping, got ", config::describe_node(node_)));
    return false;
  }
  const YamlEntry* entry(const std::string& key) const {
    for (const YamlEntry& e : node_.entries)
      if (e.key == key) return &e;
    return nullptr;
  }
  std::string path(const std::string& key) const { return schema::join_path(path_, key); }

 private:
  const YamlNode& node_;
  std::string path_;
  std::vector<std::string> keys_;
  schema::Reader& r_;
};

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
  SectionReader sec(node, path, {"min", "max", "num", "log"}, r);
  sec.check_mapping();
  const YamlEntry* min = sec.entry("min");
  const YamlEntry* max = sec.entry("max");
  const YamlEntry* num = sec.entry("num");
  const YamlEntry* log = sec.entry("log");
  bool ok = true;
  if (min == nullptr || max == nullptr) {
    r.error(node.pos, path, "a range needs both min and max");
    ok = false;
  }
  if (min != nullptr && !schema::read_value(min->value, sec.path("min"), schema::real_at_least(-1e308), axis.min, r))
    ok = false;
  if (max != nullptr && !schema::read_value(max->value, sec.path("max"), schema::real_at_least(-1e308), axis.max, r))
    ok = false;
  if (log != nullptr && !schema::read_value(log->value, sec.path("log"), schema::any_bool(), axis.log, r)) ok = false;
  int count = 0;
  if (num != nullptr) {
    if (!schema::read_value(num->value, sec.path("num"), schema::at_least(1), count, r)) ok = false;
  } else if (strategy != Strategy::halton) {
    r.error(node.pos, path,
            cat("a range needs `num` (the number of grid points) for strategy ", strategy_name(strategy),
                "; only halton samples a range continuously"));
    ok = false;
  }
  if (!ok) return;
  axis.integer = config::is_integer_text(min->value.text) && config::is_integer_text(max->value.text);
  if (axis.max < axis.min) {
    r.error(max->value.pos, sec.path("max"),
            cat("max (", schema::show(axis.max), ") is below min (", schema::show(axis.min), ")"));
    return;
  }
  if (axis.log && axis.min <= 0) {
    r.error(min->value.pos, sec.path("min"), cat("a log range needs min > 0, got ", schema::show(axis.min)));
    return;
  }
  if (num == nullptr) {
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
  Study study;
  study.file = filename;
  study.text = text;
  if (!root) errors.throw_if_any();
  if (root->kind != YamlNode::Kind::mapping) {
    errors.add(
        root->kind == YamlNode::Kind::null ? Position{filename, 0, 0, 0} : root->pos, "",
        cat("a study is a mapping with keys study, base, search, scales, sweep; got ", config::describe_node(*root)));
    errors.throw_if_any();
  }
  for (const config::Override& ov : parsed) config::apply_override(*root, ov);

  schema::Reader r(errors);
  SectionReader top(*root, "", {"study", "base", "search", "scales", "sweep"}, r);
  top.check_mapping();

  if (const YamlEntry* e = top.entry("study")) {
    if (schema::read_value(e->value, "study", schema::non_empty(), study.name, r)) {
      for (char c : study.name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
          r.error(e->value.pos, "study", "a study name uses letters, digits, '-', '_' and '.' only");
          break;
        }
      }
    }
  } else {
    r.error(Position{filename, 0, 1, 1}, "study", "missing key 'study' (the study's name)");
  }

  const YamlEntry* base = top.entry("base");
  if (base == nullptr) {
    r.error(Position{filename, 0, 1, 1}, "base", "missing key 'base' (the trial config every trial starts from)");
  } else if (base->value.kind != YamlNode::Kind::mapping) {
    r.error(base->value.pos, "base", cat("expected a trial config mapping, got ", config::describe_node(base->value)));
  } else {
    study.base = base->value;
  }

  // scales, before search: whether train.steps may be searched depends on them.
  const YamlEntry* scales = top.entry("scales");
  if (scales != nullptr) {
    SectionReader sec(scales->value, "scales", {"models", "data_ratios", "tokens_per_param"}, r);
    if (sec.check_mapping()) {
      if (const YamlEntry* e = sec.entry("tokens_per_param"))
        schema::read_value(e->value, sec.path("tokens_per_param"), schema::above(0), study.tokens_per_param, r);
      if (const YamlEntry* e = sec.entry("data_ratios")) {
        if (e->value.kind != YamlNode::Kind::sequence || e->value.items.empty()) {
          r.error(e->value.pos, sec.path("data_ratios"),
                  cat("expected a non-empty list of positive numbers, got ", config::describe_node(e->value)));
        } else {
          for (const YamlNode& item : e->value.items) {
            double v = 0;
            if (schema::read_value(item, sec.path("data_ratios"), schema::above(0), v, r)) {
              if (std::find(study.data_ratios.begin(), study.data_ratios.end(), v) != study.data_ratios.end())
                r.error(item.pos, sec.path("data_ratios"), cat("ratio ", item.text, " is listed twice"));
              else
                study.data_ratios.push_back(v);
            }
          }
        }
      } else {
        study.data_ratios = {1.0};
      }
      const YamlEntry* models = sec.entry("models");
      if (models == nullptr || models->value.kind != YamlNode::Kind::mapping || models->value.entries.empty()) {
        r.error(models == nullptr ? scales->key_pos : models->value.pos, sec.path("models"),
                "scales need models: a mapping of size names to partial model sections ({d_model: 64, ...})");
      } else {
        for (const YamlEntry& m : models->value.entries) {
          if (m.value.kind != YamlNode::Kind::mapping && m.value.kind != YamlNode::Kind::null) {
            r.error(m.value.pos, sec.path("models") + "." + m.key,
                    cat("expected a partial model section, got ", config::describe_node(m.value)));
            continue;
          }
          study.models.push_back(ScaleModel{m.key, m.key_pos, m.value});
        }
      }
    }
  }
  const bool have_scales = scales != nullptr;

  const YamlEntry* search = top.entry("search");
  bool have_seeds = false;
  std::vector<Axis> common_axes;
  if (search == nullptr) {
    r.error(Position{filename, 0, 1, 1}, "search", "missing key 'search' (strategy and space)");
  } else {
    SectionReader sec(search->value, "search",
                      {"strategy", "seeds", "points", "tolerance", "recentre_min_saving", "space", "optimizers"}, r);
    if (sec.check_mapping()) {
      bool strategy_ok = false;
      if (const YamlEntry* e = sec.entry("strategy")) {
        std::string s;
        if (schema::read_value(e->value, sec.path("strategy"), schema::one_of({"grid", "halton", "coordinate_descent"}),
                               s, r)) {
          study.strategy = s == "grid"     ? Strategy::grid
                           : s == "halton" ? Strategy::halton
                                           : Strategy::coordinate_descent;
          strategy_ok = true;
        }
      } else {
        r.error(search->key_pos, sec.path("strategy"), "missing key 'strategy' (grid, halton or coordinate_descent)");
      }
      const auto only_for = [&](const char* key, Strategy s) {
        const YamlEntry* e = sec.entry(key);
        if (e != nullptr && strategy_ok && study.strategy != s) {
          r.error(e->key_pos, sec.path(key),
                  cat(key, " applies to strategy ", strategy_name(s), " only (this study uses ",
                      strategy_name(study.strategy), ")"));
          return static_cast<const YamlEntry*>(nullptr);
        }
        return e;
      };
      if (const YamlEntry* e = only_for("points", Strategy::halton))
        schema::read_value(e->value, sec.path("points"), schema::at_least(1), study.halton_points, r);
      else if (strategy_ok && study.strategy == Strategy::halton)
        r.error(search->key_pos, sec.path("points"), "strategy halton needs `points` (how many points to draw)");
      if (const YamlEntry* e = only_for("tolerance", Strategy::coordinate_descent))
        schema::read_value(e->value, sec.path("tolerance"), schema::real_at_least(0), study.tolerance, r);
      if (const YamlEntry* e = only_for("recentre_min_saving", Strategy::coordinate_descent))
        schema::read_value(e->value, sec.path("recentre_min_saving"), schema::at_least(0), study.recentre_min_saving,
                           r);
      if (const YamlEntry* e = sec.entry("seeds")) {
        have_seeds = true;
        if (e->value.kind != YamlNode::Kind::sequence || e->value.items.empty()) {
          r.error(e->value.pos, sec.path("seeds"),
                  cat("expected a non-empty list of seeds, got ", config::describe_node(e->value)));
        } else {
          for (const YamlNode& item : e->value.items) {
            std::uint64_t seed = 0;
            if (!schema::read_value(item, sec.path("seeds"), schema::at_least(0), seed, r)) continue;
            if (std::find(study.seeds.begin(), study.seeds.end(), seed) != study.seeds.end())
              r.error(item.pos, sec.path("seeds"), cat("seed ", item.text, " is listed twice"));
            else
              study.seeds.push_back(seed);
          }
        }
      }
      if (strategy_ok) {
        if (const YamlEntry* e = sec.entry("space"))
          read_space(e->value, sec.path("space"), study.strategy, have_scales, common_axes, r);
        const YamlEntry* opts = sec.entry("optimizers");
        if (opts != nullptr) {
          if (opts->value.kind != YamlNode::Kind::mapping || opts->value.entries.empty()) {
            r.error(opts->value.pos, sec.path("optimizers"),
                    "expected a mapping of optimizer types to {base: {...}, space: {...}}");
          } else {
            for (const YamlEntry& o : opts->value.entries) {
              OptimizerSearch os;
              os.name = o.key;
              os.pos = o.key_pos;
              os.axes = common_axes;
              const std::string opath = sec.path("optimizers") + "." + o.key;
              SectionReader osec(o.value, opath, {"base", "space"}, r);
              if (!osec.check_mapping()) continue;
              if (const YamlEntry* b = osec.entry("base")) {
                if (b->value.kind != YamlNode::Kind::mapping && b->value.kind != YamlNode::Kind::null) {
                  r.error(b->value.pos, osec.path("base"),
                          cat("expected a mapping of optimizer keys, got ", config::describe_node(b->value)));
                } else {
                  os.base = b->value;
                  if (const YamlNode* t = os.base.find("type"))
                    r.error(t->pos, osec.path("base") + ".type",
                            "the optimizer type is the key of this entry; remove `type`");
                }
              }
              if (const YamlEntry* s = osec.entry("space"))
                read_space(s->value, osec.path("space"), study.strategy, have_scales, os.axes, r);
              study.optimizers.push_back(std::move(os));
            }
          }
        } else {
          OptimizerSearch os;
          os.name = "adamw";
          os.pos = base != nullptr ? base->key_pos : Position{filename, 0, 1, 1};
          if (const YamlNode* opt = study.base.find("optimizer"))
            if (const YamlNode* t = opt->find("type"); t != nullptr && t->kind == YamlNode::Kind::scalar) {
              os.name = t->text;
              os.pos = t->pos;
            }
          os.axes = common_axes;
          study.optimizers.push_back(std::move(os));
        }
      }
    }
  }

  if (const YamlEntry* sweep = top.entry("sweep")) {
    SectionReader sec(sweep->value, "sweep", {"ranks_per_trial", "max_attempts", "collective_timeout_s"}, r);
    if (sec.check_mapping()) {
      if (const YamlEntry* e = sec.entry("collective_timeout_s"))
        schema::read_value(e->value, sec.path("collective_timeout_s"), schema::real_at_least(0),
                           study.collective_timeout_s, r);
      if (const YamlEntry* e = sec.entry("ranks_per_trial"))
        schema::read_value(e->value, sec.path("ranks_per_trial"), schema::at_least(1), study.ranks_per_trial, r);
      if (const YamlEntry* e = sec.entry("max_attempts"))
        schema::read_value(e->value, sec.path("max_attempts"), schema::at_least(1), study.max_attempts, r);
    }
  }

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
