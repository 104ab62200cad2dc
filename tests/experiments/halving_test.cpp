// search.halving (docs/sweeps.md "Successive halving"): the rung decisions as a pure function of
// finished results, on synthetic losses whose ranking at the smallest ratio is the reverse of the
// ranking at the largest (so halving keeps the points that lead early and prunes the late winner,
// and says so); what waits (trunks at their rung's fork point, larger ratios held) before a
// decision; +inf last; keep 1 prunes nothing (lifting the pruning); coordinate descent's first
// round; the keep count; and the study errors at their line and column.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"
#include "tests/experiments/study_errors.hpp"

using namespace expt;
using experiments::halving_keep_count;
using experiments::PlannedTrial;
using experiments::Planner;
using test::has_error;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// 4 learning rates x 2 seeds x ratios 1, 2, 4 in one group (adamw/s): 24 trials, 8 trunks.
std::string study_text(const std::string& halving, const std::string& strategy = "grid") {
  return R"(study: h
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}}
  optimizer: {lr: 2.0e-3}
  schedule: {type: wsd, warmup: 2, decay: 0.25}
  train: {batch_size: 4}
search:
  strategy: )" +
         strategy +
         R"(
  seeds: [1, 2]
)" + halving +
         R"(  space:
    optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
scales:
  tokens_per_param: 1
  data_ratios: [4, 1, 2]
  models: {s: {d_model: 16}}
  branching: wsd
)";
}

// Early losses favour a high learning rate, late ones a low one: at x1 the order is 4e-3 < 3e-3 <
// 2e-3 < 1e-3, at x4 the reverse. Seed 2 adds a small offset that keeps the order.
double synthetic_loss(const PlannedTrial& t) {
  const double lr = t.config.optimizer.lr;
  const double seed = t.seed == 2 ? 0.001 : 0.0;
  if (t.data_ratio < 1.5) return 2.0 - 100 * lr + seed;  // x1: higher lr better
  return 1.0 + 100 * lr + seed;                          // x2, x4: lower lr better
}

const PlannedTrial* find(const Planner& p, double ratio, double lr, std::uint64_t seed) {
  for (const PlannedTrial& t : p.static_trials())
    if (t.data_ratio == ratio && std::abs(t.config.optimizer.lr - lr) < 1e-12 && t.seed == seed) return &t;
  return nullptr;
}

// Every halving trial at `ratio` finished with the synthetic loss.
void finish(const Planner& p, double ratio, experiments::ResultStore& store) {
  for (const PlannedTrial& t : p.halving_trials())
    if (t.data_ratio == ratio) store[t.id] = synthetic_loss(t);
}

}  // namespace

TEST_CASE("halving keeps max(min_points, ceil(keep * n)), at most n", "[halving]") {
  CHECK(halving_keep_count(4, 0.34, 1) == 2);
  CHECK(halving_keep_count(3, 0.34, 1) == 2);  // ceil(1.02)
  CHECK(halving_keep_count(3, 1.0 / 3.0, 1) == 1);
  CHECK(halving_keep_count(6, 0.5, 1) == 3);
  CHECK(halving_keep_count(6, 0.5, 4) == 4);
  CHECK(halving_keep_count(2, 0.1, 3) == 2);
  CHECK(halving_keep_count(5, 1.0, 1) == 5);
  CHECK(halving_keep_count(0, 0.5, 2) == 0);
}

TEST_CASE("halving prunes at cooldown ends: the early leaders continue, the late winner is pruned", "[halving]") {
  const auto study = experiments::parse_study(study_text("  halving: {keep: 0.5, min_points: 1}\n"), "study.yaml");
  CHECK(study.halving.keep == 0.5);
  Planner p(study);
  REQUIRE(p.halving_trials().size() == 24);
  experiments::ResultStore store;

  // Nothing finished: rung x1 waits. Every trunk (x4) stops at its x1 fork point, x2 is held.
  auto plan = p.halving(store);
  CHECK(plan.pruned.empty());
  REQUIRE(plan.rungs.size() == 1);
  CHECK_FALSE(plan.rungs[0].decided);
  CHECK(plan.rungs[0].group == "adamw/s");
  CHECK(plan.rungs[0].ratio == 1);
  CHECK(plan.rungs[0].trials == 8);
  CHECK(plan.stop_at.size() == 8);
  CHECK(plan.held.size() == 8);
  for (double lr : {1e-3, 2e-3, 3e-3, 4e-3})
    for (std::uint64_t seed : {1, 2}) {
      const PlannedTrial* trunk = find(p, 4, lr, seed);
      const PlannedTrial* x1 = find(p, 1, lr, seed);
      REQUIRE(trunk != nullptr);
      REQUIRE(x1 != nullptr);
      CHECK(plan.stop_at.at(trunk->id) == x1->branch_step);
      CHECK(std::binary_search(trunk->fork_points.begin(), trunk->fork_points.end(), x1->branch_step));
      CHECK(plan.held.count(find(p, 2, lr, seed)->id) == 1);
    }

  // All but one x1 trial done: still undecided (every seed of every live point is needed).
  finish(p, 1, store);
  store.erase(find(p, 1, 1e-3, 2)->id);
  CHECK_FALSE(p.halving(store).rungs[0].decided);
  CHECK(p.halving(store).rungs[0].trials_done == 7);

  // Rung x1 decided: lr 4e-3 and 3e-3 lead (best early) and continue; 2e-3 and 1e-3 are pruned at
  // x2 and x4, though 1e-3 would win at x4.
  store[find(p, 1, 1e-3, 2)->id] = synthetic_loss(*find(p, 1, 1e-3, 2));
  plan = p.halving(store);
  REQUIRE(plan.rungs.size() == 2);
  CHECK(plan.rungs[0].decided);
  CHECK(plan.rungs[0].kept == 2);
  REQUIRE(plan.rungs[0].ranked.size() == 4);
  CHECK(plan.rungs[0].ranked[0].first == "optimizer.lr=4.0e-3");
  CHECK(plan.rungs[0].ranked[1].first == "optimizer.lr=3.0e-3");
  CHECK(plan.rungs[0].ranked[3].first == "optimizer.lr=1.0e-3");
  CHECK(plan.rungs[0].ranked[0].second == Approx(2.0 - 0.4 + 0.0005));  // the mean over the two seeds
  CHECK(plan.pruned.size() == 8);                                       // 2 points x 2 seeds x (x2, x4)
  for (double lr : {1e-3, 2e-3})
    for (std::uint64_t seed : {1, 2})
      for (double ratio : {2.0, 4.0}) CHECK(plan.pruned.at(find(p, ratio, lr, seed)->id) == 1);
  // The live points wait at rung x2: their trunks stop at the x2 fork point, nothing is held.
  CHECK(!plan.rungs[1].decided);
  CHECK(plan.rungs[1].ratio == 2);
  CHECK(plan.rungs[1].trials == 4);
  CHECK(plan.held.empty());
  CHECK(plan.stop_at.size() == 4);
  CHECK(plan.stop_at.at(find(p, 4, 4e-3, 1)->id) == find(p, 2, 4e-3, 1)->branch_step);

  // Rung x2 (late ranking: 3e-3 beats 4e-3): keep 0.5 of 2 keeps 1, 4e-3 is pruned at x4.
  finish(p, 2, store);
  for (const auto& [id, ratio] : plan.pruned) store.erase(id);  // pruned trials never finish
  plan = p.halving(store);
  REQUIRE(plan.rungs.size() == 2);
  CHECK(plan.rungs[1].decided);
  CHECK(plan.rungs[1].kept == 1);
  CHECK(plan.rungs[1].ranked[0].first == "optimizer.lr=3.0e-3");
  CHECK(plan.pruned.size() == 10);
  CHECK(plan.pruned.at(find(p, 4, 4e-3, 2)->id) == 2);
  CHECK(plan.stop_at.empty());  // the survivor's trunk runs to its end
  CHECK(plan.held.empty());

  // A pure function of the finished results: the same store, the same decisions; results of
  // larger ratios do not change a smaller rung's decision.
  CHECK(p.halving(store).pruned == plan.pruned);
  store[find(p, 4, 3e-3, 1)->id] = 0.1;
  CHECK(p.halving(store).pruned == plan.pruned);
}

TEST_CASE("halving: a diverged seed ranks its point last, min_points, keep 1 prunes nothing", "[halving]") {
  {
    const auto study1 = experiments::parse_study(study_text("  halving: {keep: 0.25, min_points: 2}\n"), "study.yaml");
    Planner p(study1);
    experiments::ResultStore store;
    finish(p, 1, store);
    store[find(p, 1, 4e-3, 2)->id] = kInf;  // the early leader diverged on one seed
    const auto plan = p.halving(store);
    CHECK(plan.rungs[0].kept == 2);  // min_points over ceil(0.25 * 4) = 1
    CHECK(plan.rungs[0].ranked.back().first == "optimizer.lr=4.0e-3");
    CHECK(std::isinf(plan.rungs[0].ranked.back().second));
    CHECK(plan.rungs[0].ranked[0].first == "optimizer.lr=3.0e-3");
    CHECK(plan.pruned.count(find(p, 4, 4e-3, 1)->id) == 1);
    CHECK(plan.pruned.count(find(p, 4, 2e-3, 1)->id) == 0);
  }
  {
    // keep 1: every point continues (how a user lifts the pruning of a finished sweep).
    const auto study2 = experiments::parse_study(study_text("  halving: {keep: 1}\n"), "study.yaml");
    Planner p(study2);
    experiments::ResultStore store;
    finish(p, 1, store);
    finish(p, 2, store);
    const auto plan = p.halving(store);
    CHECK(plan.pruned.empty());
    CHECK(plan.rungs.size() == 2);
    CHECK(plan.rungs[1].kept == 4);
  }
  {
    // Without search.halving nothing is planned.
    const auto study3 = experiments::parse_study(study_text(""), "study.yaml");
    Planner p(study3);
    CHECK(p.halving_trials().empty());
    CHECK(p.halving({}).rungs.empty());
    CHECK(p.halving_schedule().empty());
  }
}

TEST_CASE("halving schedule: live points per rung and tokens at most and at least", "[halving]") {
  const auto study4 = experiments::parse_study(study_text("  halving: {keep: 0.5}\n"), "study.yaml");
  Planner p(study4);
  const auto schedules = p.halving_schedule();
  REQUIRE(schedules.size() == 1);
  const auto& s = schedules[0];
  CHECK(s.ratios == std::vector<double>{1, 2, 4});
  CHECK(s.live == std::vector<std::size_t>{4, 2, 1});
  // Every point trains the same tokens: per (point, seed), with c_k the fork points and n_k the
  // steps, a point pruned after x1 costs c1 + (n1 - c1) = n1, after x2 c2 + (n2 - c2) = n2, and
  // the survivor the trunk n4 plus the branch cooldowns n1 - c1 and n2 - c2.
  const PlannedTrial* x1 = find(p, 1, 1e-3, 1);
  const PlannedTrial* x2 = find(p, 2, 1e-3, 1);
  const PlannedTrial* x4 = find(p, 4, 1e-3, 1);
  const double per_step = 4 * 8;
  const double n1 = static_cast<double>(x1->config.train.steps), n2 = static_cast<double>(x2->config.train.steps),
               n4 = static_cast<double>(x4->config.train.steps);
  const double c1 = static_cast<double>(x1->branch_step), c2 = static_cast<double>(x2->branch_step);
  const double pruned_x1 = n1, pruned_x2 = c2 + (n1 - c1) + (n2 - c2), full = n4 + (n1 - c1) + (n2 - c2);
  const double expected = 2 * per_step * (2 * pruned_x1 + 1 * pruned_x2 + 1 * full);  // 2 seeds
  CHECK(s.tokens_worst == Approx(expected));
  CHECK(s.tokens_best == Approx(expected));
  CHECK(s.tokens_branched == Approx(2 * per_step * 4 * full));
  CHECK(s.tokens_independent == Approx(2 * per_step * 4 * (n1 + n2 + n4)));
  CHECK(s.tokens_best < s.tokens_branched);
}

TEST_CASE("halving with coordinate descent: the first round of every cell", "[halving]") {
  const auto study5 =
      experiments::parse_study(study_text("  halving: {keep: 0.5}\n", "coordinate_descent"), "study.yaml");
  Planner p(study5);
  // The first round around the base point (lr 2e-3) holds every value of the one axis, at every ratio.
  CHECK(p.halving_trials().size() == 24);
  experiments::ResultStore store;
  finish(p, 1, store);
  const auto plan = p.halving(store);
  CHECK(plan.pruned.size() == 8);
  // Pruned trials count as done (+inf) for the x2 cell's round, so it completes with the others.
  experiments::ResultStore planning = store;
  for (const auto& [id, ratio] : plan.pruned) planning.emplace(id, kInf);
  std::size_t x2_cell = 0;
  for (std::size_t c = 0; c < p.cells().size(); ++c)
    if (p.cells()[c].data_ratio == 2) x2_cell = c;
  const auto round = p.cd_round(x2_cell, planning);
  CHECK(round.todo.size() == 4);  // the two live points x 2 seeds
  for (const PlannedTrial& t : round.todo) CHECK(plan.pruned.count(t.id) == 0);
  for (const PlannedTrial& t : round.todo) planning[t.id] = synthetic_loss(t);
  const auto next = p.cd_round(x2_cell, planning);
  CHECK(next.converged);
  CHECK(next.centre_text == "optimizer.lr=3.0e-3");  // the best live point; pruned ones never centre
}

TEST_CASE("bad halving values are reported at their line and column", "[halving][study]") {
  const auto with = [](const std::string& halving, bool branching = true) {
    std::string text = study_text("  halving: " + halving + "\n");
    if (!branching) text.replace(text.find("  branching: wsd\n"), 17, "");
    return test::study_errors(text);
  };
  // halving is on line 11 (7 base lines, then search, strategy, seeds).
  CHECK(has_error(with("{keep: 0.5}", false), "study.yaml:11:12: search.halving:", "needs scales.branching: wsd"));
  CHECK(has_error(with("{keep: 0}"), "study.yaml:11:19: search.halving.keep:", "> 0"));
  CHECK(has_error(with("{keep: 1.5}"), "study.yaml:11:19: search.halving.keep:", "(0, 1]"));
  CHECK(has_error(with("{keep: 0.5, min_points: 0}"), "study.yaml:11:36: search.halving.min_points:", ">= 1"));
  CHECK(has_error(with("{min_points: 2}"), "study.yaml:11:12: search.halving.keep:", "needs `keep`"));
  CHECK(has_error(with("{keep: 0.5, kep: 1}"), "study.yaml:11:24: search.halving.kep:", "unknown key"));
  CHECK(has_error(with("0.5"), "study.yaml:11:12: search.halving:", "expected a mapping"));
  CHECK(with("{keep: 0.34, min_points: 2}").empty());
}
