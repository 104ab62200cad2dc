// Successive halving at cooldown ends (search.halving; docs/sweeps.md "Successive halving",
// decisions 126-128). A pure function of the finished trials: which points a rung's decision keeps,
// which trials are pruned for good, where each live trunk waits, and which trials wait for a
// decision. Nothing of it is stored: every worker, a resumed sweep and `expt status` derive the
// same answer from the same trial directories.
//
// Cost: O(T log T) for T halving trials (maps keyed by trial id and point); called after every
// finished trial.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "experiments/study/plan.hpp"
#include "experiments/study/planner_impl.hpp"

namespace expt::experiments {

std::size_t halving_keep_count(std::size_t n, double keep, int min_points) {
  // ceil of keep * n, with a margin for keep values like 0.34 * 3 = 1.0200000000000002 (which is
  // meant as 2 of 3 but must not round a product that is exactly whole upwards).
  const double want = std::ceil(keep * static_cast<double>(n) - 1e-9);
  const std::size_t k = std::max(static_cast<std::size_t>(std::max(0.0, want)), static_cast<std::size_t>(min_points));
  return std::min(n, k);
}

HalvingPlan Planner::halving(const ResultStore& store) const {
  HalvingPlan plan;
  const Halving& h = study_.halving;
  if (h.keep <= 0 || halving_trials_.empty()) return plan;
  std::vector<double> ratios = study_.data_ratios;
  std::sort(ratios.begin(), ratios.end());
  const auto rung_of = [&](double ratio) {
    return static_cast<std::size_t>(std::lower_bound(ratios.begin(), ratios.end(), ratio) - ratios.begin());
  };

  // group -> point (in plan order) -> rung -> its trials (one per seed).
  struct PointTrials {
    std::string point;
    std::vector<std::vector<const PlannedTrial*>> at;  // by rung
  };
  std::vector<std::string> group_order;
  std::map<std::string, std::vector<PointTrials>> groups;
  std::map<std::pair<std::string, std::string>, std::size_t> point_index;
  for (const PlannedTrial& t : halving_trials_) {
    const std::string& name = cells_[t.cell].name;
    const std::string group = name.substr(0, name.rfind("/x"));
    auto [g, new_group] = groups.try_emplace(group);
    if (new_group) group_order.push_back(group);
    const auto [it, inserted] = point_index.emplace(std::make_pair(group, t.point), g->second.size());
    if (inserted)
      g->second.push_back(PointTrials{t.point, std::vector<std::vector<const PlannedTrial*>>(ratios.size())});
    g->second[it->second].at[rung_of(t.data_ratio)].push_back(&t);
  }

  for (const std::string& group : group_order) {
    const std::vector<PointTrials>& points = groups[group];
    std::vector<std::size_t> live(points.size());
    for (std::size_t i = 0; i < live.size(); ++i) live[i] = i;
    // The trunk of each (point, seed): its trial at the largest ratio it has.
    const auto trunk_of = [&](const PointTrials& p, std::uint64_t seed) -> const PlannedTrial* {
      for (std::size_t k = ratios.size(); k-- > 0;)
        for (const PlannedTrial* t : p.at[k])
          if (t->seed == seed) return t;
      return nullptr;
    };
    for (std::size_t k = 0; k + 1 < ratios.size(); ++k) {
      HalvingRung rung;
      rung.group = group;
      rung.ratio = ratios[k];
      // The live points with trials at this ratio are ranked; one without (infeasible here) passes.
      std::vector<std::size_t> ranked, passing;
      std::vector<double> loss(points.size(), std::numeric_limits<double>::infinity());
      for (std::size_t i : live) {
        const auto& trials = points[i].at[k];
        if (trials.empty()) {
          passing.push_back(i);
          continue;
        }
        ranked.push_back(i);
        double sum = 0;
        for (const PlannedTrial* t : trials) {
          ++rung.trials;
          const auto done = store.find(t->id);
          if (done == store.end()) {
            sum = std::numeric_limits<double>::quiet_NaN();
            continue;
          }
          ++rung.trials_done;
          sum += std::isfinite(done->second) ? done->second : std::numeric_limits<double>::infinity();
        }
        loss[i] = sum / static_cast<double>(trials.size());
      }
      rung.decided = rung.trials_done == rung.trials;
      if (!rung.decided) {
        // Every live point waits here: its trunk at this rung's fork point, its larger ratios held.
        for (std::size_t i : live) {
          for (std::size_t j = k + 1; j < ratios.size(); ++j)
            for (const PlannedTrial* t : points[i].at[j]) plan.held.insert(t->id);
          for (const PlannedTrial* t : points[i].at[k]) {
            const PlannedTrial* trunk = trunk_of(points[i], t->seed);
            if (trunk == nullptr || trunk == t) continue;
            plan.held.erase(trunk->id);
            plan.stop_at[trunk->id] = t->branch_step;
          }
        }
        plan.rungs.push_back(std::move(rung));
        break;
      }
      // Best first; +inf (a diverged or failed seed) last; ties in plan order.
      std::stable_sort(ranked.begin(), ranked.end(), [&](std::size_t a, std::size_t b) {
        const bool fa = std::isfinite(loss[a]), fb = std::isfinite(loss[b]);
        if (fa != fb) return fa;
        return fa && loss[a] < loss[b];
      });
      rung.kept = halving_keep_count(ranked.size(), h.keep, h.min_points);
      for (std::size_t i : ranked) rung.ranked.emplace_back(points[i].point, loss[i]);
      std::vector<std::size_t> next(passing);
      for (std::size_t r = 0; r < ranked.size(); ++r) {
        const std::size_t i = ranked[r];
        if (r < rung.kept) {
          next.push_back(i);
          continue;
        }
        // Pruned: its trials at larger ratios never run (a finished one stays what it is).
        for (std::size_t j = k + 1; j < ratios.size(); ++j)
          for (const PlannedTrial* t : points[i].at[j])
            if (store.count(t->id) == 0) plan.pruned.emplace(t->id, ratios[k]);
      }
      std::sort(next.begin(), next.end());  // plan order
      live = std::move(next);
      plan.rungs.push_back(std::move(rung));
    }
  }
  return plan;
}

std::vector<HalvingSchedule> Planner::halving_schedule() const {
  std::vector<HalvingSchedule> out;
  const Halving& h = study_.halving;
  if (h.keep <= 0 || halving_trials_.empty()) return out;
  std::vector<double> ratios = study_.data_ratios;
  std::sort(ratios.begin(), ratios.end());
  const std::size_t K = ratios.size();
  const auto rung_of = [&](double ratio) {
    return static_cast<std::size_t>(std::lower_bound(ratios.begin(), ratios.end(), ratio) - ratios.begin());
  };
  // group -> point -> seed -> its trial at each rung (null when infeasible there).
  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, std::map<std::uint64_t, std::vector<const PlannedTrial*>>>> groups;
  std::map<std::string, std::vector<std::string>> point_order;
  for (const PlannedTrial& t : halving_trials_) {
    const std::string& name = cells_[t.cell].name;
    const std::string group = name.substr(0, name.rfind("/x"));
    if (groups.count(group) == 0) order.push_back(group);
    auto& points = groups[group];
    if (points.count(t.point) == 0) point_order[group].push_back(t.point);
    auto& by_rung = points[t.point][t.seed];
    by_rung.resize(K, nullptr);
    by_rung[rung_of(t.data_ratio)] = &t;
  }
  for (const std::string& group : order) {
    HalvingSchedule sch;
    sch.group = group;
    sch.ratios = ratios;
    // cost[p][m]: the tokens of point p (all seeds) when it stops after rung m (m = K-1: in full).
    std::vector<std::vector<double>> cost;
    for (const std::string& point : point_order[group]) {
      std::vector<double> c(K, 0);
      for (const auto& [seed, by_rung] : groups[group][point]) {
        const PlannedTrial* trunk = nullptr;
        for (const PlannedTrial* t : by_rung)
          if (t != nullptr) trunk = t;
        double done = 0;           // tokens so far: the trunk's prefix and the branches' cooldowns
        std::int64_t reached = 0;  // the trunk's step so far
        for (std::size_t k = 0; k < K; ++k) {
          const PlannedTrial* t = by_rung[k];
          if (t != nullptr) {
            const double per_step = static_cast<double>(t->config.train.batch_size) * t->config.task.seq_len;
            sch.tokens_independent += static_cast<double>(t->config.train.steps) * per_step;
            if (t == trunk) {
              done += static_cast<double>(t->config.train.steps - reached) * per_step;
              reached = t->config.train.steps;
            } else {
              const bool forks =
                  std::binary_search(trunk->fork_points.begin(), trunk->fork_points.end(), t->branch_step);
              const std::int64_t c_k = forks ? t->branch_step : 0;
              done += static_cast<double>(std::max<std::int64_t>(0, c_k - reached)) * per_step;
              reached = std::max(reached, c_k);
              done += static_cast<double>(t->config.train.steps - c_k) * per_step;
            }
          }
          c[k] += done;
        }
      }
      cost.push_back(std::move(c));
    }
    sch.live.push_back(cost.size());
    for (std::size_t k = 0; k + 1 < K; ++k)
      sch.live.push_back(halving_keep_count(sch.live.back(), h.keep, h.min_points));
    // Survivors: the most expensive points (worst case) or the cheapest (best case) by full cost.
    std::vector<std::size_t> by_cost(cost.size());
    for (std::size_t i = 0; i < by_cost.size(); ++i) by_cost[i] = i;
    std::stable_sort(by_cost.begin(), by_cost.end(),
                     [&](std::size_t a, std::size_t b) { return cost[a][K - 1] > cost[b][K - 1]; });
    const auto total = [&](bool expensive_survive) {
      double sum = 0;
      for (std::size_t r = 0; r < by_cost.size(); ++r) {
        const std::size_t rank = expensive_survive ? r : by_cost.size() - 1 - r;
        std::size_t last = 0;  // the last rung this point is live at
        while (last + 1 < K && rank < sch.live[last + 1]) ++last;
        sum += cost[by_cost[r]][last];
      }
      return sum;
    };
    sch.tokens_worst = total(true);
    sch.tokens_best = total(false);
    for (const auto& c : cost) sch.tokens_branched += c[K - 1];
    out.push_back(std::move(sch));
  }
  return out;
}

}  // namespace expt::experiments
