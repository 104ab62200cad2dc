// Planning: grid and Halton counts and values, derived step budgets, infeasible points dropped,
// and coordinate descent on synthetic objectives with a known optimum (reaches it, is idempotent
// under restarts, raises the grid-edge alarm).
#include "experiments/study/plan.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "core/data/task.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/schedule.hpp"

using namespace expt;
using experiments::Planner;

namespace {

const std::string kBase = R"(study: p
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}}
  train: {steps: 50, batch_size: 4}
)";

experiments::Study study(const std::string& search, const std::string& extra = "") {
  return experiments::parse_study(kBase + search + extra, "study.yaml");
}

}  // namespace

TEST_CASE("radical inverse matches the mirrored digits", "[plan]") {
  // Brute force: write i in base b, mirror the digits after the radix point.
  for (std::uint64_t b : {2u, 3u, 5u})
    for (std::uint64_t i = 0; i < 50; ++i) {
      double expect = 0, place = 1.0 / static_cast<double>(b);
      std::uint64_t n = i;
      std::vector<std::uint64_t> digits;
      while (n > 0) {
        digits.push_back(n % b);
        n /= b;
      }
      for (std::uint64_t d : digits) {
        expect += static_cast<double>(d) * place;
        place /= static_cast<double>(b);
      }
      CHECK(experiments::radical_inverse(i, b) == Approx(expect).margin(1e-15));
    }
  CHECK(experiments::radical_inverse(3, 2) == 0.75);
}

TEST_CASE("grid: the product of the axes times the seeds, infeasible points dropped", "[plan]") {
  const auto s = study(R"(search:
  strategy: grid
  seeds: [1, 2]
  space:
    optimizer.lr: [1.0e-3, 1.0e-2, 1.0e-1]
    schedule.warmup: [0, 10, 100]
)");
  Planner planner(s);
  // 3 x 3 points, of which the 3 with warmup 100 > 50 steps are dropped; 2 seeds each.
  CHECK(planner.static_trials().size() == 3 * 2 * 2);
  CHECK(planner.dropped().size() == 3);
  for (const auto& d : planner.dropped()) CHECK(d.reason.find("warmup 100") != std::string::npos);
  std::set<std::string> ids;
  std::set<std::pair<double, double>> points;
  for (const auto& t : planner.static_trials()) {
    ids.insert(t.id);
    points.insert({t.config.optimizer.lr, t.config.schedule.warmup});
    CHECK(t.config.train.steps == 50);
    CHECK(t.config.train.ranks == 1);
  }
  CHECK(ids.size() == 12);
  CHECK(points.size() == 6);
  // Planning twice gives the same trials in the same order.
  Planner again(s);
  REQUIRE(again.static_trials().size() == planner.static_trials().size());
  for (std::size_t i = 0; i < again.static_trials().size(); ++i)
    CHECK(again.static_trials()[i].id == planner.static_trials()[i].id);
}

TEST_CASE("halton: points inside the ranges, reparameterised keys, lists as categories", "[plan]") {
  const auto s = study(R"(search:
  strategy: halton
  points: 16
  space:
    optimizer.lr: {min: 1.0e-4, max: 1.0e-1, log: true}
    optimizer.one_minus_beta1: {min: 0.01, max: 0.2}
    train.batch_size: [4, 8]
)");
  Planner planner(s);
  REQUIRE(planner.static_trials().size() == 16);
  std::set<int> batches;
  for (std::size_t i = 0; i < 16; ++i) {
    const auto& c = planner.static_trials()[i].config;
    CHECK(c.optimizer.lr >= 1e-4);
    CHECK(c.optimizer.lr <= 1e-1);
    CHECK(c.optimizer.beta1 >= 0.8 - 1e-12);
    CHECK(c.optimizer.beta1 <= 0.99 + 1e-12);
    // Point i+1 on axis 0 is radical_inverse(i+1, 2) in log space.
    const double u = experiments::radical_inverse(i + 1, 2);
    CHECK(std::log(c.optimizer.lr) == Approx(std::log(1e-4) + u * (std::log(1e-1) - std::log(1e-4))).epsilon(1e-9));
    batches.insert(c.train.batch_size);
  }
  CHECK(batches == std::set<int>{4, 8});
}

TEST_CASE("scales derive each cell's steps from its token budget", "[plan]") {
  const std::string text = R"(study: s
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {n_layers: 1, mixer: {type: attention, heads: 2}}
  train: {batch_size: 4}
search: {strategy: grid, space: {optimizer.lr: [1.0e-3]}}
scales:
  tokens_per_param: 20
  data_ratios: [1, 4]
  models: {s: {d_model: 16}, m: {d_model: 32}}
)";
  const auto s = experiments::parse_study(text, "study.yaml");
  Planner planner(s);
  REQUIRE(planner.static_trials().size() == 4);
  for (const auto& t : planner.static_trials()) {
    // N from the model itself; steps = round(ratio * 20 * N / (4 * 8)).
    nn::ParameterStore<float> store;
    nn::Model<float> model(t.config.model, data::make_task(t.config.task)->vocab_size(), store);
    const double expect = t.data_ratio * 20.0 * static_cast<double>(model.n_params_nonembed()) / 32.0;
    CHECK(t.config.train.steps == std::llround(expect));
    CHECK(t.config.model.d_model == (t.model_tag == "s" ? 16 : 32));
  }
}

namespace {

const std::string kCd = R"(search:
  strategy: coordinate_descent
  tolerance: 1.0e-3
  space:
    optimizer.lr: [1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2]
    optimizer.weight_decay: [0.0, 0.05, 0.1, 0.2]
    schedule.warmup: [0, 2, 4]
)";

// A separable bowl with its minimum at lr 3e-3, weight decay 0.1, warmup 2.
double bowl(const config::TrialConfig& c) {
  const double a = std::log10(c.optimizer.lr) - std::log10(3e-3);
  const double b = c.optimizer.weight_decay - 0.1;
  const double w = c.schedule.warmup - 2;
  return 1.0 + a * a + 10 * b * b + 0.01 * w * w;
}

// Runs coordinate descent to convergence, every round's trials finished at once.
experiments::CdRound descend(const experiments::Study& s, double (*f)(const config::TrialConfig&),
                             experiments::ResultStore& store, int* rounds) {
  Planner planner(s);
  for (*rounds = 0; *rounds < 50; ++*rounds) {
    auto round = planner.cd_round(0, store);
    if (round.converged) return round;
    for (const auto& t : round.todo) store[t.id] = f(t.config);
  }
  FAIL("coordinate descent did not converge in 50 rounds");
  return {};
}

}  // namespace

TEST_CASE("coordinate descent reaches the known optimum of a separable objective", "[plan][cd]") {
  // The base config (defaults) starts away from it: lr 1e-3, weight decay 0, warmup 0.
  const auto s = study(kCd);
  Planner planner(s);
  const auto first = planner.cd_round(0, {});
  // The first round is the centre plus every other value of every axis: 1 + 5 + 3 + 2.
  CHECK(first.todo.size() == 11);
  CHECK(first.centre_text == "optimizer.lr=1.0e-3 optimizer.weight_decay=0.0 schedule.warmup=0");
  experiments::ResultStore store;
  int rounds = 0;
  const auto done = descend(s, bowl, store, &rounds);
  CHECK(done.centre_text == "optimizer.lr=3.0e-3 optimizer.weight_decay=0.1 schedule.warmup=2");
  CHECK(done.best_loss == Approx(1.0));
  CHECK(done.edge_alarms.empty());
  CHECK(rounds >= 2);
  // Brute force over the whole grid agrees: no grid point beats the centre.
  for (double lr : {1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2})
    for (double wd : {0.0, 0.05, 0.1, 0.2})
      for (double w : {0.0, 2.0, 4.0}) {
        config::TrialConfig c;
        c.optimizer.lr = lr;
        c.optimizer.weight_decay = wd;
        c.schedule.warmup = w;
        CHECK(bowl(c) >= done.best_loss - 1e-12);
      }
}

TEST_CASE("coordinate descent is idempotent under restarts", "[plan][cd]") {
  const auto s = study(kCd);
  experiments::ResultStore full;
  int rounds = 0;
  const auto reference = descend(s, bowl, full, &rounds);

  // Finish only half of each round, then "restart" (a new planner from the same store): the round
  // in progress is the same one, and the end is identical.
  experiments::ResultStore store;
  for (int guard = 0; guard < 200; ++guard) {
    Planner planner(s);
    const auto round = planner.cd_round(0, store);
    if (round.converged) {
      CHECK(round.centre_text == reference.centre_text);
      CHECK(round.near_best == reference.near_best);
      CHECK(store.size() == full.size());
      for (const auto& [id, loss] : store) CHECK(full.count(id) == 1);
      return;
    }
    // A round of one trial cannot be cut in half: finish it.
    const std::size_t half = round.todo.size() == 1 ? 1 : round.todo.size() / 2;
    for (std::size_t i = 0; i < half; ++i) store[round.todo[i].id] = bowl(round.todo[i].config);
    if (half == round.todo.size()) continue;
    Planner restarted(s);
    const auto again = restarted.cd_round(0, store);
    CHECK(again.centre == round.centre);
    CHECK(again.todo.size() == round.todo.size() - half);
  }
  FAIL("no convergence");
}

TEST_CASE("coordinate descent raises the alarm when the best value sits at a grid edge", "[plan][cd]") {
  // Loss decreasing in lr: the best lr is the largest on the axis.
  const auto s = study(kCd);
  experiments::ResultStore store;
  int rounds = 0;
  const auto done = descend(
      s, [](const config::TrialConfig& c) { return 2.0 - c.optimizer.lr; }, store, &rounds);
  CHECK(done.centre[0] == 5);
  REQUIRE(done.edge_alarms.size() >= 1);
  CHECK(done.edge_alarms[0].find("optimizer.lr") == 0);
  CHECK(done.edge_alarms[0].find("upper edge") != std::string::npos);
}

TEST_CASE("coordinate descent needs the base value on every axis", "[plan][cd]") {
  const auto s = study(R"(search:
  strategy: coordinate_descent
  space:
    optimizer.lr: [1.0e-2, 3.0e-2]
)");
  try {
    Planner planner(s);
    FAIL("no error");
  } catch (const config::ConfigErrors& e) {
    REQUIRE(e.errors().size() == 1);
    CHECK(e.errors()[0].str().rfind("study.yaml:9:5: optimizer.lr:", 0) == 0);
    CHECK(e.errors()[0].message.find("not among") != std::string::npos);
  }
}

TEST_CASE("wsd branching: trunk keys, branch steps and fork points", "[plan][branches]") {
  const std::string text = R"(study: b
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {n_layers: 1, mixer: {type: attention, heads: 2}}
  schedule: {type: wsd, warmup: 3, decay: 0.2}
  train: {batch_size: 4}
search: {strategy: grid, seeds: [1, 2], space: {optimizer.lr: [1.0e-3, 3.0e-3]}}
scales:
  tokens_per_param: 2
  data_ratios: [1, 2, 4]
  models: {s: {d_model: 16}}
  branching: wsd
)";
  const auto s = experiments::parse_study(text, "study.yaml");
  Planner planner(s);
  const auto& trials = planner.static_trials();
  REQUIRE(trials.size() == 12);
  std::map<std::string, std::vector<const experiments::PlannedTrial*>> groups;
  for (const auto& t : trials) {
    REQUIRE(!t.trunk_key.empty());
    CHECK(t.branch_step == optim::wsd_decay_start(t.config.schedule, t.config.train.steps));
    groups[t.trunk_key].push_back(&t);
  }
  // One trunk per (point, seed): 2 lrs x 2 seeds, each with its 3 ratios.
  REQUIRE(groups.size() == 4);
  for (const auto& [key, g] : groups) {
    REQUIRE(g.size() == 3);
    const experiments::PlannedTrial* longest = g.front();
    for (const auto* t : g)
      if (t->config.train.steps > longest->config.train.steps) longest = t;
    // The longest keeps a fork point at each shorter trial's cooldown start, and nothing else.
    std::vector<std::int64_t> expect;
    for (const auto* t : g)
      if (t != longest) expect.push_back(t->branch_step);
    std::sort(expect.begin(), expect.end());
    CHECK(longest->fork_points == expect);
  }
  const auto b = experiments::summarise_branches(trials);
  CHECK(b.trunks == 4);
  CHECK(b.branches == 8);
  double saved = 0;
  for (const auto& t : trials)
    if (t.data_ratio < 4) saved += static_cast<double>(t.branch_step) * 4 * 8;
  CHECK(b.tokens_independent - b.tokens_branched == saved);
}

TEST_CASE("wsd branching refuses schedules whose shared steps would differ", "[plan][branches]") {
  const auto plan = [](const std::string& schedule) {
    const std::string text =
        "study: b\nbase:\n  task: {type: word_problem, group: Z3, seq_len: 8}\n"
        "  model: {n_layers: 1, mixer: {type: attention, heads: 2}}\n  schedule: " +
        schedule +
        "\n  train: {batch_size: 4}\nsearch: {strategy: grid}\nscales:\n  data_ratios: [1, 2]\n"
        "  models: {s: {d_model: 16}}\n  branching: wsd\n";
    const auto s = experiments::parse_study(text, "study.yaml");
    Planner planner(s);
  };
  CHECK_NOTHROW(plan("{type: wsd, warmup: 0}"));
  CHECK_THROWS_WITH(plan("{type: cosine, warmup: 2}"),
                    Catch::Contains("study.yaml:5:20: schedule.type") && Catch::Contains("needs schedule.type wsd"));
  CHECK_THROWS_WITH(plan("{type: wsd, warmup: 0.05}"),
                    Catch::Contains("study.yaml:5:33: schedule.warmup") && Catch::Contains("warmup in steps"));
}
