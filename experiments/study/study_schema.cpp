#include "experiments/study/study_schema.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/config/text.hpp"

namespace expt::experiments {

using config::cat;
using config::YamlEntry;
using config::YamlNode;
namespace schema = config::schema;

namespace {

using ReadFn = std::function<bool(const YamlNode&, StudyReading&, const std::string&, schema::Reader&)>;

// A key read by `read`, documented by one row (type, default, domain, meaning).
template <class S>
schema::Key<S> custom(std::string name,
                      std::function<bool(const YamlNode&, S&, const std::string&, schema::Reader&)> read,
                      std::string type, std::string default_value, std::string domain, std::string doc) {
  schema::Key<S> k;
  k.name = name;
  k.read = std::move(read);
  k.write = [](const S&, const std::string&, int, schema::Sink&) {};
  k.describe = [type, default_value, domain, doc](const std::string& path, const std::string& applies,
                                                  const std::vector<std::pair<std::string, S>>&,
                                                  std::vector<schema::DocRow>& rows) {
    rows.push_back(schema::DocRow{path, type, default_value, domain, applies, doc});
  };
  return k;
}

// A section read by its own table on the same struct.
template <class S>
schema::Key<S> nested(std::string name, const schema::Table<S>& table) {
  schema::Key<S> k;
  k.name = name;
  k.read = [&table](const YamlNode& node, S& s, const std::string& path, schema::Reader& r) {
    table.read(node, s, path, r);
    return true;
  };
  k.write = [](const S&, const std::string&, int, schema::Sink&) {};
  k.describe = [&table](const std::string& path, const std::string&, const std::vector<std::pair<std::string, S>>&,
                        std::vector<schema::DocRow>& rows) { table.describe(path, rows); };
  return k;
}

// A list of unique values, each read by `read_one` (false: reported, skipped).
template <class T>
bool read_unique_list(const YamlNode& node, const std::string& path, const std::string& expected, const char* what,
                      std::vector<T>& out, schema::Reader& r,
                      const std::function<bool(const YamlNode&, T&)>& read_one) {
  if (node.kind != YamlNode::Kind::sequence || node.items.empty()) {
    r.error(node.pos, path, cat("expected a non-empty list of ", expected, ", got ", config::describe_node(node)));
    return false;
  }
  for (const YamlNode& item : node.items) {
    T v{};
    if (!read_one(item, v)) continue;
    if (std::find(out.begin(), out.end(), v) != out.end())
      r.error(item.pos, path, cat(what, " ", item.text, " is listed twice"));
    else
      out.push_back(v);
  }
  return true;
}

// search.points, tolerance, recentre_min_saving: read when the strategy is theirs (or unknown);
// under another strategy parse_study reports the key.
template <class T, class D>
ReadFn strategy_key(Strategy strategy, T Study::*member, D domain) {
  return [strategy, member, domain](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
    if (s.strategy_ok && s.strategy != strategy) return true;
    return schema::read_value(node, path, domain, s.*member, r);
  };
}

// search.confirm: {seeds, band, max_points} (docs/sweeps.md "Confirmation").
const schema::Table<StudyReading>& confirm_table() {
  static const schema::Table<StudyReading> table{
      "",
      nullptr,
      {
          custom<StudyReading>(
              "seeds",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.confirm_seeds_node = &node;
                return schema::read_value(node, path, schema::at_least(2), s.confirm.seeds, r);
              },
              "integer", "(required)", ">= 2, > the number of search.seeds",
              "the seeds every confirmed point has in all (the search seeds, then the next integers)"),
          custom<StudyReading>(
              "band",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                if (node.kind == YamlNode::Kind::scalar && node.text == "tolerance") {
                  s.confirm.band_is_tolerance = true;
                  return true;
                }
                if (node.kind != YamlNode::Kind::scalar || !node.plain ||
                    !(config::is_integer_text(node.text) || config::is_float_text(node.text))) {
                  r.error(node.pos, path,
                          cat("expected `tolerance` (search.tolerance) or a loss band >= 0, got ",
                              config::describe_node(node)));
                  return false;
                }
                s.confirm.band_is_tolerance = false;
                return schema::read_value(node, path, schema::real_at_least(0), s.confirm.band, r);
              },
              "tolerance or float", "tolerance", "`tolerance`, or >= 0",
              "points whose search loss is below best + band are confirmed with the best"),
          custom<StudyReading>(
              "max_points",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                return schema::read_value(node, path, schema::at_least(1), s.confirm.max_points, r);
              },
              "integer", "no limit", ">= 1", "confirm at most this many points per cell, best first"),
      }};
  return table;
}

// search.halving: {keep, min_points} (docs/sweeps.md "Successive halving").
const schema::Table<StudyReading>& halving_table() {
  static const schema::Table<StudyReading> table{
      "",
      nullptr,
      {
          custom<StudyReading>(
              "keep",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.halving_keep_node = &node;
                double keep = 0;
                if (!schema::read_value(node, path, schema::above(0), keep, r)) return false;
                if (keep > 1) {
                  r.error(node.pos, path,
                          cat("the fraction of points kept at each rung is in (0, 1], got ", node.text));
                  return false;
                }
                s.halving.keep = keep;
                return true;
              },
              "float", "(required)", "(0, 1]",
              "the fraction of a rung's live points (by mean loss over seeds) that continue to the next data ratio"),
          custom<StudyReading>(
              "min_points",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                return schema::read_value(node, path, schema::at_least(1), s.halving.min_points, r);
              },
              "integer", "1", ">= 1", "at least this many points continue at each rung (all when fewer are live)"),
      }};
  return table;
}

const schema::Table<StudyReading>& search_table() {
  static const schema::Table<StudyReading> table{
      "strategy",
      &StudyReading::strategy_text,
      {
          custom<StudyReading>(
              "strategy",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                if (!schema::read_value(node, path, schema::one_of({"grid", "halton", "coordinate_descent"}),
                                        s.strategy_text, r))
                  return false;
                s.strategy = s.strategy_text == "grid"     ? Strategy::grid
                             : s.strategy_text == "halton" ? Strategy::halton
                                                           : Strategy::coordinate_descent;
                s.strategy_ok = true;
                return true;
              },
              "string", "(required)", "grid, halton, coordinate_descent", "how the points of the space are chosen"),
          custom<StudyReading>(
              "seeds",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.have_seeds = true;
                return read_unique_list<std::uint64_t>(
                    node, path, "seeds", "seed", s.seeds, r, [&](const YamlNode& item, std::uint64_t& seed) {
                      return schema::read_value(item, path, schema::at_least(0), seed, r);
                    });
              },
              "list of integers", "[base.seed]", "each [0, 2^63), unique", "every point runs once per seed"),
          custom<StudyReading>("points", strategy_key(Strategy::halton, &Study::halton_points, schema::at_least(1)),
                               "integer", "(required for halton)", ">= 1",
                               "halton only: points 1..points of the Halton sequence"),
          custom<StudyReading>("tolerance",
                               strategy_key(Strategy::coordinate_descent, &Study::tolerance, schema::real_at_least(0)),
                               "float", "0.003", ">= 0", "coordinate_descent only: near-best band above the best loss"),
          custom<StudyReading>(
              "recentre_min_saving",
              strategy_key(Strategy::coordinate_descent, &Study::recentre_min_saving, schema::at_least(0)), "integer",
              "10", ">= 0", "coordinate_descent only: trials a near-best centre must save to be chosen"),
          custom<StudyReading>(
              "confirm",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.confirm_node = &node;
                confirm_table().read(node, s, path, r);
                return true;
              },
              "mapping", "off", "{seeds, band, max_points}",
              "after a cell's search: its best and near-best points re-run with more seeds"),
          custom<StudyReading>(
              "halving",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.halving_node = &node;
                halving_table().read(node, s, path, r);
                return true;
              },
              "mapping", "off", "{keep, min_points}",
              "successive halving at cooldown ends: after each data ratio's branches finish, only the best points "
              "continue their trunk (needs scales.branching: wsd)"),
          custom<StudyReading>(
              "space",
              [](const YamlNode& node, StudyReading& s, const std::string&, schema::Reader&) {
                s.space_node = &node;
                return true;
              },
              "mapping", "{}", "trial key path: list of values or range {min, max, num, log}",
              "axes of every optimizer"),
          custom<StudyReading>(
              "optimizers",
              [](const YamlNode& node, StudyReading& s, const std::string&, schema::Reader&) {
                s.optimizers_node = &node;
                return true;
              },
              "mapping", "the base's optimizer", "optimizer type: {base, space}",
              "the optimizers searched, each with its own base keys and axes"),
      }};
  return table;
}

const schema::Table<StudyReading>& scales_table() {
  static const schema::Table<StudyReading> table{
      "",
      nullptr,
      {
          custom<StudyReading>(
              "models",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.models_given = true;
                if (node.kind != YamlNode::Kind::mapping || node.entries.empty()) {
                  r.error(node.pos, path,
                          "scales need models: a mapping of size names to partial model sections ({d_model: 64, ...})");
                  return false;
                }
                for (const YamlEntry& m : node.entries) {
                  if (m.value.kind != YamlNode::Kind::mapping && m.value.kind != YamlNode::Kind::null) {
                    r.error(m.value.pos, path + "." + m.key,
                            cat("expected a partial model section, got ", config::describe_node(m.value)));
                    continue;
                  }
                  s.models.push_back(ScaleModel{m.key, m.key_pos, m.value});
                }
                return true;
              },
              "mapping", "(required)", "size name: partial model section", "the model sizes"),
          custom<StudyReading>(
              "data_ratios",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                s.data_ratios_given = true;
                return read_unique_list<double>(node, path, "positive numbers", "ratio", s.data_ratios, r,
                                                [&](const YamlNode& item, double& v) {
                                                  return schema::read_value(item, path, schema::above(0), v, r);
                                                });
              },
              "list of floats", "[1]", "each > 0, unique", "token budgets, in units of tokens_per_param x N"),
          schema::key<StudyReading, double>("tokens_per_param", &StudyReading::tokens_per_param, schema::above(0),
                                            "tokens per non-embedding parameter at data ratio 1"),
          custom<StudyReading>(
              "branching",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                std::string mode;
                if (!schema::read_value(node, path, schema::one_of({"none", "wsd"}), mode, r)) return false;
                s.branching = mode == "wsd";
                s.branching_pos = node.pos;
                return true;
              },
              "string", "none", "none, wsd",
              "wsd: the data ratios of one point and seed share a trunk run; each shorter run starts from its "
              "checkpoint at its own cooldown start (needs schedule.type wsd, an absolute warmup, >= 2 ratios)"),
      }};
  return table;
}

const schema::Table<StudyReading>& sweep_table() {
  static const schema::Table<StudyReading> table{
      "",
      nullptr,
      {
          schema::key<StudyReading, int>("ranks_per_trial", &StudyReading::ranks_per_trial, schema::at_least(1),
                                         "data-parallel ranks of one trial (sets train.ranks)"),
          schema::key<StudyReading, int>("max_attempts", &StudyReading::max_attempts, schema::at_least(1),
                                         "a FAILED trial is started at most this many times in all"),
          schema::key<StudyReading, double>("collective_timeout_s", &StudyReading::collective_timeout_s,
                                            schema::real_at_least(0),
                                            "watchdog: a collective blocked longer aborts the job (exit 124); 0: off"),
      }};
  return table;
}

}  // namespace

const schema::Table<StudyReading>& study_table() {
  static const schema::Table<StudyReading> table{
      "",
      nullptr,
      {
          custom<StudyReading>(
              "study",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                if (!schema::read_value(node, path, schema::non_empty(), s.name, r)) return false;
                for (char c : s.name) {
                  if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
                    r.error(node.pos, path, "a study name uses letters, digits, '-', '_' and '.' only");
                    return false;
                  }
                }
                return true;
              },
              "string", "(required)", "letters, digits, - _ .",
              "the study's name (default sweep directory runs/<name>)"),
          custom<StudyReading>(
              "base",
              [](const YamlNode& node, StudyReading& s, const std::string& path, schema::Reader& r) {
                if (node.kind != YamlNode::Kind::mapping) {
                  r.error(node.pos, path, cat("expected a trial config mapping, got ", config::describe_node(node)));
                  return false;
                }
                s.base = node;
                return true;
              },
              "mapping", "(required)", "a trial config (docs/config.md) without out and train.ranks",
              "the config every trial starts from"),
          nested<StudyReading>("search", search_table()),
          custom<StudyReading>(
              "compare",
              [](const YamlNode& node, StudyReading& s, const std::string&, schema::Reader&) {
                s.compare_node = &node;
                return true;
              },
              "mapping", "{}", "trial key path: list of values",
              "compared, not tuned: each value (each combination) is its own cell with the same steps; "
              "a key no axis, scale model or optimizer base sets"),
          nested<StudyReading>("scales", scales_table()),
          nested<StudyReading>("sweep", sweep_table()),
      }};
  return table;
}

const schema::Table<OptimizerSearchReading>& optimizer_search_table() {
  static const schema::Table<OptimizerSearchReading> table{
      "",
      nullptr,
      {
          custom<OptimizerSearchReading>(
              "base",
              [](const YamlNode& node, OptimizerSearchReading& o, const std::string& path, schema::Reader& r) {
                if (node.kind != YamlNode::Kind::mapping && node.kind != YamlNode::Kind::null) {
                  r.error(node.pos, path,
                          cat("expected a mapping of optimizer keys, got ", config::describe_node(node)));
                  return false;
                }
                o.base = node;
                if (const YamlNode* t = o.base.find("type"))
                  r.error(t->pos, path + ".type", "the optimizer type is the key of this entry; remove `type`");
                return true;
              },
              "mapping", "{}", "optimizer keys (docs/config.md) but type", "this optimizer's own base keys"),
          custom<OptimizerSearchReading>(
              "space",
              [](const YamlNode& node, OptimizerSearchReading& o, const std::string&, schema::Reader&) {
                o.space = &node;
                return true;
              },
              "mapping", "{}", "as search.space", "this optimizer's own axes, after the common ones"),
      }};
  return table;
}

const schema::Table<RangeReading>& range_table() {
  const auto bound = [](const YamlNode* RangeReading::*node, double RangeReading::*value) {
    return [node, value](const YamlNode& n, RangeReading& g, const std::string& path, schema::Reader& r) {
      g.*node = &n;
      if (!schema::read_value(n, path, schema::real_at_least(-1e308), g.*value, r)) g.ok = false;
      return g.ok;
    };
  };
  static const schema::Table<RangeReading> table{
      "",
      nullptr,
      {
          custom<RangeReading>("min", bound(&RangeReading::min, &RangeReading::min_value), "float", "(required)",
                               "finite; > 0 with log", "first point"),
          custom<RangeReading>("max", bound(&RangeReading::max, &RangeReading::max_value), "float", "(required)",
                               ">= min", "last point"),
          custom<RangeReading>(
              "num",
              [](const YamlNode& n, RangeReading& g, const std::string& path, schema::Reader& r) {
                g.num_given = true;
                if (!schema::read_value(n, path, schema::at_least(1), g.num, r)) g.ok = false;
                return g.ok;
              },
              "integer", "(required but for halton)", ">= 1", "points from min to max inclusive"),
          custom<RangeReading>(
              "log",
              [](const YamlNode& n, RangeReading& g, const std::string& path, schema::Reader& r) {
                if (!schema::read_value(n, path, schema::any_bool(), g.log, r)) g.ok = false;
                return g.ok;
              },
              "bool", "false", "true, false", "geometric spacing (log-uniform for halton)"),
      }};
  return table;
}

std::string study_schema_markdown() {
  std::vector<schema::DocRow> rows;
  study_table().describe("", rows);
  optimizer_search_table().describe("search.optimizers.<type>", rows);
  confirm_table().describe("search.confirm", rows);
  halving_table().describe("search.halving", rows);
  range_table().describe("<axis range>", rows);
  return schema::markdown_table(rows);
}

}  // namespace expt::experiments
