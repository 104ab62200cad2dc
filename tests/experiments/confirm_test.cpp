// search.confirm: which points get the extra seeds (the band, ties, max_points, non-finite
// losses), when (only once a cell's search is finished: grid after its last trial, coordinate
// descent after convergence), with which seeds (after the search seeds, also when there are
// several), and that the choice depends on the search seeds only, so confirmation results cannot
// change it on resume. Errors of bad confirm values at their line and column.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "core/config/config_error.hpp"
#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"
#include "tests/experiments/study_errors.hpp"

using namespace expt;
using experiments::confirmed_points;
using experiments::Planner;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

const std::string kBase = R"(study: c
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}}
  train: {steps: 50, batch_size: 4}
)";

experiments::Study study(const std::string& search) { return experiments::parse_study(kBase + search, "study.yaml"); }

std::vector<std::string> errors_of(const std::string& search) { return test::study_errors(kBase + search); }
using test::has_error;

const std::string kGrid = R"(search:
  strategy: grid
  seeds: [1]
  confirm: {seeds: 3, band: 0.05}
  space:
    optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
)";

// Search losses by learning rate: 2e-3 best, 3e-3 within 0.05 of it, the others outside.
double by_lr(const config::TrialConfig& c) {
  const double lr = c.optimizer.lr;
  return lr < 1.5e-3 ? 1.30 : lr < 2.5e-3 ? 1.00 : lr < 3.5e-3 ? 1.04 : 1.20;
}

std::set<std::string> texts(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("confirmed points: the best, its ties and the band, by loss then plan order", "[confirm]") {
  const std::vector<double> losses = {2.0, 1.0, 1.002, 1.0, kInf, 1.01, std::nan("")};
  CHECK(confirmed_points(losses, 0.003, 0) == std::vector<std::size_t>{1, 3, 2});
  // band 0: the best and every point tied with it, nothing else.
  CHECK(confirmed_points(losses, 0.0, 0) == std::vector<std::size_t>{1, 3});
  // The band is strict: 1.01 is not below 1.0 + 0.01.
  CHECK(confirmed_points(losses, 0.01, 0) == std::vector<std::size_t>{1, 3, 2});
  CHECK(confirmed_points(losses, 0.0100001, 0) == std::vector<std::size_t>{1, 3, 2, 5});
  // max_points keeps the first in that order (a tie at the cut goes to plan order).
  CHECK(confirmed_points(losses, 0.003, 2) == std::vector<std::size_t>{1, 3});
  CHECK(confirmed_points(losses, 0.003, 1) == std::vector<std::size_t>{1});
  // A wide band takes every finite loss, never +inf or NaN.
  CHECK(confirmed_points(losses, 100, 0) == std::vector<std::size_t>{1, 3, 2, 5, 0});
  CHECK(confirmed_points({kInf, kInf}, 1, 0).empty());
  CHECK(confirmed_points({}, 1, 0).empty());
}

TEST_CASE("grid: confirmation once the cell's last trial is done, with the seeds after the search's", "[confirm]") {
  const auto s = study(kGrid);
  CHECK(s.confirm.seeds == 3);
  CHECK(s.confirm.band == 0.05);
  CHECK(s.confirm.extra_seeds == std::vector<std::uint64_t>{2, 3});
  Planner planner(s);
  CHECK(planner.max_confirmation_trials() == 4 * 2);
  REQUIRE(planner.static_trials().size() == 4);

  experiments::ResultStore store;
  for (std::size_t i = 0; i + 1 < planner.static_trials().size(); ++i)
    store[planner.static_trials()[i].id] = by_lr(planner.static_trials()[i].config);
  const auto waiting = planner.confirmation(0, store);
  CHECK_FALSE(waiting.ready);
  CHECK(waiting.trials.empty());

  const auto& last = planner.static_trials().back();
  store[last.id] = by_lr(last.config);
  const auto c = planner.confirmation(0, store);
  REQUIRE(c.ready);
  CHECK(c.points == std::vector<std::string>{"optimizer.lr=2.0e-3", "optimizer.lr=3.0e-3"});
  CHECK(c.best_loss == 1.00);
  REQUIRE(c.trials.size() == 4);
  std::set<std::string> ids;
  for (const auto& t : planner.static_trials()) ids.insert(t.id);
  for (std::size_t i = 0; i < c.trials.size(); ++i) {
    const auto& t = c.trials[i];
    CHECK(t.confirmation);
    CHECK(t.seed == (i % 2 == 0 ? 2u : 3u));
    CHECK(t.config.seed == t.seed);
    CHECK(t.point == c.points[i / 2]);
    CHECK(t.cell == 0);
    CHECK(ids.insert(t.id).second);  // a new trial, not a search trial nor another confirmation
  }

  // The choice rests on the search seeds only: confirmation results, however they come out, do not
  // change it (a resumed sweep adds the same trials and nothing else).
  experiments::ResultStore later = store;
  for (const auto& t : c.trials) later[t.id] = t.point == c.points[0] ? 5.0 : 0.1;
  const auto again = planner.confirmation(0, later);
  CHECK(again.points == c.points);
  REQUIRE(again.trials.size() == c.trials.size());
  for (std::size_t i = 0; i < c.trials.size(); ++i) CHECK(again.trials[i].id == c.trials[i].id);
}

TEST_CASE("confirmation with several search seeds: means over them, only the missing seeds added", "[confirm]") {
  // Seeds 5 and 1: the extra seeds follow the largest; confirm.seeds counts the search seeds.
  const auto s = study(R"(search:
  strategy: grid
  seeds: [5, 1]
  confirm: {seeds: 4, band: 0}
  space:
    optimizer.lr: [1.0e-3, 2.0e-3]
)");
  CHECK(s.confirm.extra_seeds == std::vector<std::uint64_t>{6, 7});
  CHECK(s.confirm.band_is_tolerance == false);
  Planner planner(s);
  experiments::ResultStore store;
  // lr 1e-3: seeds 1.0 and 1.2 (mean 1.1); lr 2e-3: 1.05 and 1.05 (mean 1.05, the best on the mean
  // although seed 5's 1.0 at lr 1e-3 is the lowest single value).
  for (const auto& t : planner.static_trials())
    store[t.id] = t.config.optimizer.lr < 1.5e-3 ? (t.seed == 5 ? 1.0 : 1.2) : 1.05;
  const auto c = planner.confirmation(0, store);
  REQUIRE(c.ready);
  CHECK(c.points == std::vector<std::string>{"optimizer.lr=2.0e-3"});
  REQUIRE(c.trials.size() == 2);
  CHECK(c.trials[0].seed == 6);
  CHECK(c.trials[1].seed == 7);
}

TEST_CASE("grid ties: every point tied with the best is confirmed, a diverged seed never", "[confirm]") {
  const auto s = study(R"(search:
  strategy: grid
  seeds: [1]
  confirm: {seeds: 2, band: 0, max_points: 2}
  space:
    optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
)");
  Planner planner(s);
  CHECK(planner.max_confirmation_trials() == 2);
  experiments::ResultStore store;
  // 1e-3 diverged (+inf); 2e-3, 3e-3 and 4e-3 tie: max_points keeps the first two in plan order.
  for (const auto& t : planner.static_trials()) store[t.id] = t.config.optimizer.lr < 1.5e-3 ? kInf : 1.0;
  const auto c = planner.confirmation(0, store);
  REQUIRE(c.ready);
  CHECK(c.points == std::vector<std::string>{"optimizer.lr=2.0e-3", "optimizer.lr=3.0e-3"});

  // Every point diverged: the search is finished but there is nothing to confirm.
  for (auto& [id, loss] : store) loss = kInf;
  const auto none = planner.confirmation(0, store);
  CHECK(none.ready);
  CHECK(none.points.empty());
  CHECK(none.trials.empty());
}

TEST_CASE("coordinate descent: confirmation after convergence, over the points it evaluated", "[confirm][cd]") {
  const auto s = study(R"(search:
  strategy: coordinate_descent
  tolerance: 0.05
  seeds: [1]
  confirm: {seeds: 2, band: tolerance}
  space:
    optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
    schedule.warmup: [0, 5]
)");
  CHECK(s.confirm.band == 0.05);
  CHECK(s.confirm.band_is_tolerance);
  Planner planner(s);
  CHECK(planner.max_confirmation_trials() == 8);  // every combination, one extra seed
  experiments::ResultStore store;
  const auto loss = [](const config::TrialConfig& c) { return by_lr(c) + (c.schedule.warmup > 0 ? 0.03 : 0); };
  for (int round = 0; round < 20; ++round) {
    const auto r = planner.cd_round(0, store);
    const auto c = planner.confirmation(0, store);
    CHECK(c.ready == r.converged);
    if (r.converged) {
      // Evaluated: the start (lr 1e-3, warmup 0), its neighbours, then those of lr 2e-3. Within
      // 0.05 of 1.00: lr 2e-3 with warmup 0 (1.00) and 5 (1.03), lr 3e-3 warmup 0 (1.04).
      CHECK(c.points == std::vector<std::string>{"optimizer.lr=2.0e-3 schedule.warmup=0",
                                                 "optimizer.lr=2.0e-3 schedule.warmup=5",
                                                 "optimizer.lr=3.0e-3 schedule.warmup=0"});
      CHECK(texts(r.near_best) == texts(c.points));
      REQUIRE(c.trials.size() == 3);
      for (const auto& t : c.trials) {
        CHECK(t.seed == 2);
        CHECK(store.count(t.id) == 0);
      }
      // Confirmation results do not move coordinate descent nor the choice.
      for (const auto& t : c.trials) store[t.id] = 0.5;
      CHECK(planner.cd_round(0, store).centre == r.centre);
      CHECK(planner.confirmation(0, store).points == c.points);
      return;
    }
    CHECK(c.trials.empty());
    for (const auto& t : r.todo) store[t.id] = loss(t.config);
  }
  FAIL("coordinate descent did not converge");
}

TEST_CASE("bad confirm values are reported at their line and column", "[confirm][study]") {
  const auto with = [](const std::string& confirm) {
    return errors_of("search:\n  strategy: grid\n  seeds: [1, 2]\n  confirm: " + confirm +
                     "\n  space: {optimizer.lr: [1.0e-3]}\n");
  };
  // confirm is on line 9 of the file (5 base lines, then search and strategy and seeds).
  CHECK(has_error(with("{seeds: 2}"),
                  "study.yaml:9:20: search.confirm.seeds:", "must exceed the number of search.seeds (2)"));
  CHECK(has_error(with("{seeds: 1}"), "study.yaml:9:20: search.confirm.seeds:", ">= 2"));
  CHECK(has_error(with("{seeds: 3, band: wide}"), "study.yaml:9:29: search.confirm.band:", "expected `tolerance`"));
  CHECK(has_error(with("{seeds: 3, band: -0.1}"), "study.yaml:9:29: search.confirm.band:", ">= 0"));
  CHECK(has_error(with("{seeds: 3, max_points: 0}"), "study.yaml:9:35: search.confirm.max_points:", ">= 1"));
  CHECK(has_error(with("{seeds: 3, sedes: 2}"), "study.yaml:9:23: search.confirm.sedes:", "unknown key"));
  CHECK(has_error(with("{band: 0.1}"), "study.yaml:9:12: search.confirm.seeds:", "needs `seeds`"));
  CHECK(has_error(with("3"), "study.yaml:9:12: search.confirm:", "expected a mapping"));
  CHECK(with("{seeds: 3, band: tolerance, max_points: 2}").empty());
}

TEST_CASE("halton: confirmation once every drawn point is done", "[confirm]") {
  const auto s = study(R"(search:
  strategy: halton
  points: 4
  seeds: [1]
  confirm: {seeds: 2, band: 0.05}
  space:
    optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]
)");
  Planner planner(s);
  experiments::ResultStore store;
  std::set<std::string> drawn;
  for (const auto& t : planner.static_trials()) drawn.insert(t.point);
  CHECK(planner.max_confirmation_trials() == drawn.size());
  CHECK_FALSE(planner.confirmation(0, store).ready);
  for (const auto& t : planner.static_trials()) store[t.id] = by_lr(t.config);
  const auto c = planner.confirmation(0, store);
  REQUIRE(c.ready);
  // The drawn points within 0.05 of the best drawn one, best first.
  double best = kInf;
  for (const auto& t : planner.static_trials()) best = std::min(best, by_lr(t.config));
  std::vector<std::pair<double, std::string>> want;
  for (const auto& t : planner.static_trials())
    if (by_lr(t.config) < best + 0.05) want.emplace_back(by_lr(t.config), t.point);
  std::stable_sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  REQUIRE(c.points.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(c.points[i] == want[i].second);
  CHECK(c.trials.size() == want.size());
}
