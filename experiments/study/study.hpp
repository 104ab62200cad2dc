// A study file: a base trial config, a search over some of its keys, optional scales (model sizes x
// data ratios whose step budget is derived) and how the sweep runs. docs/sweeps.md describes the
// format and docs/decisions.md the reasons. Validation is as strict as for a trial file: every
// problem is reported at once as `file:line:col: key.path: message`, positions in the study file
// (or `--set:1:<col>` for a command-line override of the study).
//
//   study: small
//   base: {task: {...}, model: {...}, optimizer: {weight_decay: 0.1}, train: {batch_size: 16}}
//   search:
//     strategy: coordinate_descent      # grid | halton | coordinate_descent
//     seeds: [1]
//     confirm: {seeds: 3, band: tolerance}  # best and near-best points of each cell: 3 seeds in all
//     space: {schedule.warmup: [0, 10]}  # axes of every optimizer
//     optimizers:
//       adamw: {base: {lr: 3.0e-3}, space: {optimizer.lr: {min: 1.0e-3, max: 1.0e-2, num: 3, log: true}}}
//   scales: {tokens_per_param: 20, data_ratios: [1, 2], models: {s: {d_model: 32}, m: {d_model: 64}}}
//   sweep: {ranks_per_trial: 1, max_attempts: 2}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/config_error.hpp"
#include "core/config/trial_config.hpp"
#include "core/config/yaml_document.hpp"

namespace expt::experiments {

enum class Strategy { grid, halton, coordinate_descent };
const char* strategy_name(Strategy s);

// One searched key. Values are YAML scalars positioned in the study file, so that a value the
// trial schema rejects is reported where it was written.
struct Axis {
  std::string key;                  // as written: "optimizer.lr", "optimizer.one_minus_beta1"
  std::string path;                 // where: "search.space.optimizer.lr", "search.optimizers.muon.space.optimizer.lr"
  std::vector<std::string> target;  // the trial key it sets: {"optimizer", "beta1"}
  bool one_minus = false;           // a `one_minus_<name>` key sets <name> = 1 - value
  config::Position pos;             // of the key
  // Discrete candidates: a list as written, or a range {min, max, num, log} expanded to num
  // points (evenly spaced, or geometrically when log). Grid and coordinate descent use these.
  std::vector<config::YamlNode> values;
  // A range without `num` (Halton only): sampled continuously in [min, max], on a log scale when
  // log; integers when min and max are both integers.
  bool continuous = false;
  double min = 0, max = 0;
  bool log = false;
  bool integer = false;
};

// The search of one optimizer: optimizer.type = name, `base` merged into the base config's
// optimizer section, then the axes (the study-wide ones first, then its own).
struct OptimizerSearch {
  std::string name;
  config::Position pos;
  config::YamlNode base;  // a mapping of optimizer keys, or null
  std::vector<Axis> axes;
};

// A comparison dimension (`compare:` in the study): a trial key whose values are compared, not
// tuned. Every value (every combination, with several keys) is its own cell next to the
// optimizer, model size and data ratio, with the same steps in every cell.
struct CompareKey {
  std::string key;                  // as written: "model.mixer.type"
  std::vector<std::string> target;  // the trial key it sets: {"model", "mixer", "type"}
  config::Position pos;             // of the key
  std::vector<config::YamlNode> values;
};

// A named model size: a partial model section merged into the base config's model.
struct ScaleModel {
  std::string tag;
  config::Position pos;
  config::YamlNode model;
};

// search.confirm (docs/sweeps.md "Confirmation"): once a cell's search is finished, its best point
// and every point within `band` of it (by the mean loss over the search seeds) run again with more
// seeds, so the cell's best point and the comparison between cells rest on several seeds.
struct Confirm {
  int seeds = 0;                  // 0: no confirmation; else the seeds a confirmed point has in all
  double band = 0;                // near-best band above the best loss (resolved: a number)
  bool band_is_tolerance = true;  // `band: tolerance` (search.tolerance) rather than a number
  int max_points = 0;             // at most this many points per cell, best first; 0: no limit
  config::Position pos;           // of search.confirm
  // The seeds added: the integers after the largest search seed, confirm.seeds - seeds.size() of them.
  std::vector<std::uint64_t> extra_seeds;
};

// search.halving (docs/sweeps.md "Successive halving"): with WSD branches, the points of one
// (optimizer, compared values, model size) are compared at the end of each data ratio's cooldown
// (a finished branch), smallest ratio first, and only the best fraction continue their trunk to the
// next ratio.
struct Halving {
  double keep = 0;       // 0: off; else the fraction (0, 1] of the live points kept at each rung
  int min_points = 1;    // but at least this many (all of them when fewer are alive)
  config::Position pos;  // of search.halving
};

struct Study {
  std::string name;
  std::string file;  // the study file, as named on the command line
  std::string text;  // its contents as submitted
  // The base trial config (with the study's overrides applied); positions are in the study file.
  config::YamlNode base;
  Strategy strategy = Strategy::grid;
  std::vector<OptimizerSearch> optimizers;  // one per searched optimizer, in file order
  std::vector<std::uint64_t> seeds;         // every point runs once per seed
  int halton_points = 0;                    // halton: points drawn (indices 1..points of the sequence)
  double tolerance = 3e-3;                  // coordinate descent: near-best band above the best loss
  int recentre_min_saving = 10;             // coordinate descent: see docs/sweeps.md
  Confirm confirm;                          // search.confirm
  Halving halving;                          // search.halving
  // Scales: when models is empty the base model is the only one ("base") and train.steps comes
  // from the base config; otherwise train.steps = round(ratio * tokens_per_param * N / (batch *
  // seq_len)), N the model's non-embedding parameters.
  std::vector<ScaleModel> models;
  std::vector<double> data_ratios;
  // Comparison dimensions, in file order. With scales, a cell's train.steps comes from N of the
  // model without the compared values, so every compared value trains on the same tokens.
  std::vector<CompareKey> compare;
  double tokens_per_param = 20;
  // scales.branching: wsd: the data ratios of one (optimizer, compared values, model size, point,
  // seed) share a trunk; each shorter run starts from the longest one's checkpoint at its own
  // cooldown start (experiments/trial/branching.hpp, docs/sweeps.md "Branches").
  bool branching = false;
  config::Position branching_pos;
  int ranks_per_trial = 1;            // ranks of one data-parallel trial (sets train.ranks of every trial)
  double collective_timeout_s = 600;  // watchdog: a collective blocked longer aborts the job; 0: off
  int max_attempts = 2;               // a FAILED trial is started at most this many times in all
};

// Reads and validates a study file; `overrides` are `key.path=value` applied to the study document
// (e.g. `base.train.batch_size=8`, `sweep.ranks_per_trial=2`). Throws config::ConfigErrors listing
// every problem. Each optimizer's base config is validated here; the points of the search are
// validated by the planner (experiments/study/plan.hpp), also at their positions in the study file.
Study load_study(const std::string& path, const std::vector<std::string>& overrides = {});
Study parse_study(const std::string& text, const std::string& filename, const std::vector<std::string>& overrides = {});

}  // namespace expt::experiments
