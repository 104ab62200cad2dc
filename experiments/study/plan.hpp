// Planning: a Study expanded into trial configs. Grid and Halton give every trial at once;
// coordinate descent gives one round per cell as a pure function of (study, finished results), so
// that restarting the driver reproduces the same rounds (docs/sweeps.md "Strategies").
//
// A cell is one (optimizer, compared values, model size, data ratio); cells are independent searches. A point is
// one value per axis; a trial is a point with one seed. A trial's id is config::config_hash of its
// resolved config (train.ranks = sweep.ranks_per_trial, `out` excluded). Points whose warmup does
// not fit in their step budget are dropped and reported, not run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/config/loader.hpp"
#include "core/config/trial_config.hpp"
#include "experiments/study/study.hpp"

namespace expt::experiments {

struct Cell {
  std::string name;       // "adamw", "adamw/<model>/x<ratio>" with scales, "adamw/<compared values>/..." with compare
  std::size_t optimizer;  // index into Study::optimizers
  int model = -1;         // index into Study::models; -1: the base model
  double data_ratio = 0;  // 0: train.steps as the base config says
  std::vector<std::size_t> compare = {};  // index of the value of each Study::compare key
};

// "model.mixer.type=gla" (keys of Study::compare with the cell's values, space-separated; empty
// without compare).
std::string compare_label(const Study& study, const Cell& cell);

struct PlannedTrial {
  std::string id;              // config_hash(config)
  config::TrialConfig config;  // resolved; `out` is left to the runner
  std::size_t cell = 0;
  std::string cell_name, optimizer, model_tag;  // model_tag "base" without scales
  double data_ratio = 0;
  std::uint64_t seed = 0;
  std::string point;  // "optimizer.lr=1.0e-03 schedule.warmup=10", the axis values as set
  // The same values typed as their trial key (one_minus_ axes: the float as written), by axis key
  // in study order: sweep.h5's /axes columns.
  std::vector<std::pair<std::string, config::TypedValue>> axes;
  std::int64_t n_params = 0;
  std::int64_t n_params_nonembed = 0;
  // Relative cost for longest-first handout: steps * batch_size * n_params (~ training FLOPs / 6).
  double cost = 0;
  bool confirmation = false;  // an extra seed of a confirmed point (search.confirm)
  // WSD branches (Study::branching; experiments/trial/branching.hpp). Trials with the same
  // trunk_key differ only in train.steps, and the longest of them is the others' trunk.
  std::string trunk_key;                  // empty: the study does not branch
  std::int64_t branch_step = 0;           // this trial's cooldown start, where it forks from its trunk
  std::vector<std::int64_t> fork_points;  // the cooldown starts of this point at the study's smaller ratios
  std::string trunk_id;                   // set by the scheduler when it hands out a branch
  // search.halving: set by the scheduler when it hands out a trunk whose point waits for a rung
  // decision: the trunk trains to this step (the rung's fork point), commits it and stops (PAUSED).
  std::int64_t stop_at = 0;
};

// The id shared by the trials of one trunk: config_hash with train.steps left out.
std::string trunk_key_of(const config::TrialConfig& cfg);

// Trunks and branches of a set of trials (the planned ones, or one coordinate-descent round):
// every trial whose trunk_key another longer trial shares is a branch of the longest one.
struct BranchSummary {
  std::size_t trunks = 0;  // trials with at least one branch
  std::size_t branches = 0;
  double tokens_independent = 0;  // every trial from scratch
  double tokens_branched = 0;     // trunks in full, branches from their branch step
};
BranchSummary summarise_branches(const std::vector<PlannedTrial>& trials);

struct DroppedPoint {
  std::string cell, point, reason;
};

// Index into each axis's discrete values (grid and coordinate descent).
using Point = std::vector<std::size_t>;

// What the planner knows of finished trials: id -> final eval loss (+inf for a diverged trial or
// one that failed for good). Only trials that will not run again belong here.
using ResultStore = std::map<std::string, double>;

struct CdRound {
  std::size_t cell = 0;
  int round = 0;  // rounds completed before this one in this cell
  Point centre;
  std::string centre_text;
  bool converged = false;  // every neighbour of the centre is done: a local optimum within tolerance
  double best_loss = std::numeric_limits<double>::infinity();  // L*, over the points done so far
  std::vector<PlannedTrial> todo;                              // this round's trials not in the store
  std::vector<std::string> near_best;                          // points within tolerance of L*
  std::vector<std::string> edge_alarms;                        // converged with a best value at the edge of its axis
  std::vector<DroppedPoint> dropped;                           // infeasible neighbours
  // Every point done so far in the replayed rounds with its mean loss over the seeds, in index order.
  std::vector<std::pair<Point, double>> evaluated;
};

// search.confirm in one cell: once its search is finished, which points run the extra seeds.
struct Confirmation {
  std::size_t cell = 0;
  bool ready = false;  // the cell's search is finished (grid/Halton: every trial; CD: converged)
  double best_loss = std::numeric_limits<double>::infinity();  // over the search seeds
  std::vector<std::string> points;                             // the confirmed points, best first
  std::vector<PlannedTrial> trials;                            // their extra-seed trials, done or not
};

// The points search.confirm re-runs, as indices into `losses` (each candidate point's mean loss
// over the search seeds, candidates in plan order): the best point, every point tied with it and
// every point below best + band, by loss with ties in plan order, at most max_points of them (0: no
// limit). None when no loss is finite. A pure function of the search results, so a resumed sweep
// confirms the same points.
std::vector<std::size_t> confirmed_points(const std::vector<double>& losses, double band, int max_points);

// search.halving (docs/sweeps.md "Successive halving"; decisions 126-128). A halving group is
// the cells of one (optimizer, compared values, model size): the same points at every data ratio.
// Its rungs are the ratios in increasing order. Rung k is decided once every live point's trials
// at ratio r_k (all search seeds) are done: the points are ranked by their mean loss over seeds
// (+inf when a seed diverged or failed for good; ties in plan order) and the best
// max(min_points, ceil(keep * n)) stay live; the others are pruned: their trials at larger ratios
// never run. Until then a live point's trunk trains no further than the fork point of r_k, and
// its trials at larger ratios wait.
struct HalvingRung {
  std::string group;  // the cells' name without "/x<ratio>": "adamw/s"
  double ratio = 0;   // the rung's data ratio (never the largest: that has no next rung)
  bool decided = false;
  std::size_t trials_done = 0, trials = 0;  // of the live points at this ratio
  // Decided: the live points ranked, best first, with their mean loss over seeds; the first
  // `kept` continue.
  std::vector<std::pair<std::string, double>> ranked;
  std::size_t kept = 0;
};
struct HalvingPlan {
  std::map<std::string, double> pruned;         // trial id -> the ratio of the rung that pruned its point
  std::map<std::string, std::int64_t> stop_at;  // a live trunk's id -> the fork point it waits at
  std::set<std::string> held;                   // ids of trials at a ratio whose rung is not decided yet
  std::vector<HalvingRung> rungs;               // per group, the decided rungs and the first undecided one
};

// The number of points kept from n live ones: min(n, max(min_points, ceil(keep * n))).
std::size_t halving_keep_count(std::size_t n, double keep, int min_points);

// What halving costs in one group, known before anything runs (`expt plan`): the live points at
// each rung (the counts do not depend on the results), and the training tokens when the points
// that survive are the most (worst case) or the least (best case) expensive ones; equal when every
// point trains the same tokens. With branches alone (no halving) and without branches, to compare.
struct HalvingSchedule {
  std::string group;
  std::vector<double> ratios;     // increasing
  std::vector<std::size_t> live;  // points live at each rung
  double tokens_worst = 0, tokens_best = 0, tokens_branched = 0, tokens_independent = 0;
};

class Planner {
 public:
  // Validates the study's points (grid, Halton: all of them; coordinate descent: the first round of
  // every cell, which uses every axis value once) and throws config::ConfigErrors for those the
  // trial schema rejects, at their positions in the study file.
  explicit Planner(const Study& study);
  ~Planner();
  Planner(const Planner&) = delete;
  Planner& operator=(const Planner&) = delete;

  const Study& study() const { return study_; }
  const std::vector<Cell>& cells() const { return cells_; }

  // Grid, Halton: every trial (in plan order: cell, then point, then seed) and the dropped points.
  const std::vector<PlannedTrial>& static_trials() const { return static_trials_; }
  const std::vector<DroppedPoint>& dropped() const { return dropped_; }

  // Coordinate descent: the current round of `cell` given the finished trials.
  CdRound cd_round(std::size_t cell, const ResultStore& store) const;

  // search.confirm: the confirmation of `cell` given the finished trials (not ready while its
  // search runs). Only the search seeds' trials decide which points are confirmed.
  Confirmation confirmation(std::size_t cell, const ResultStore& store) const;
  // The most confirmation trials the study can add (which points is known only once each cell's
  // search is finished): per cell min(max_points, the cell's points) x the extra seeds.
  std::size_t max_confirmation_trials() const;

  // search.halving: what the finished trials decide (empty when the study does not halve). A
  // pure function of `store` (finished trials only), so every worker and a resumed sweep derive
  // the same PRUNED trials.
  HalvingPlan halving(const ResultStore& store) const;
  // The trials halving applies to: grid and Halton every planned trial, coordinate descent the
  // first round of every cell (the round whose points are the same at every data ratio).
  const std::vector<PlannedTrial>& halving_trials() const { return halving_trials_; }
  // Per group, the halving schedule of halving_trials() (empty without halving).
  std::vector<HalvingSchedule> halving_schedule() const;

  // A cell's base config (no axis applied; train.steps derived when the study has scales), for
  // sweep.resolved.yaml.
  config::TrialConfig cell_base(std::size_t cell) const;

  // The starting centre of coordinate descent in a cell: the base config's value on every axis.
  const Point& cd_start(std::size_t cell) const;

 private:
  struct Impl;
  const Study& study_;
  std::vector<Cell> cells_;
  std::vector<PlannedTrial> static_trials_;
  std::vector<DroppedPoint> dropped_;
  std::vector<PlannedTrial> halving_trials_;
  std::unique_ptr<Impl> impl_;
};

// Longest first (by cost), ties in plan order: the order a sweep hands trials out.
std::vector<PlannedTrial> longest_first(std::vector<PlannedTrial> trials);

// The radical inverse of `index` in base `base` (the Halton sequence's coordinate): the digits of
// index in that base mirrored around the radix point, a number in [0, 1).
double radical_inverse(std::uint64_t index, std::uint64_t base);

}  // namespace expt::experiments
