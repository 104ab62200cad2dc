// Word-problem task: targets against a prefix product of permutation arrays computed here,
// batches as pure functions of (seed, step, index), eval/train separation, uniform tokens.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/data/groups.hpp"
#include "core/data/task.hpp"
#include "core/data/word_problem.hpp"

using expt::data::Batch;
using expt::data::WordProblemTask;

namespace {

expt::config::TaskConfig make_cfg(const std::string& group, int seq_len, std::vector<int> eval_lengths = {}) {
  expt::config::TaskConfig cfg;
  cfg.type = "word_problem";
  cfg.group = group;
  cfg.seq_len = seq_len;
  cfg.eval_lengths = std::move(eval_lengths);
  return cfg;
}

// Rows [0, count) of a batch as one vector per sequence (inputs then targets).
std::vector<std::vector<int>> rows(const Batch& b) {
  std::vector<std::vector<int>> out;
  for (int i = 0; i < b.batch; ++i) {
    std::vector<int> row(b.inputs.begin() + i * b.length, b.inputs.begin() + (i + 1) * b.length);
    row.insert(row.end(), b.targets.begin() + i * b.length, b.targets.begin() + (i + 1) * b.length);
    out.push_back(row);
  }
  return out;
}

}  // namespace

TEST_CASE("word problem: targets are prefix products of permutations", "[word_problem]") {
  for (const std::string name : {"S3", "S4", "A5", "S5", "Z2", "Z5", "Z7"}) {
    INFO(name);
    const WordProblemTask task(make_cfg(name, 40));
    const auto& group = task.group();
    CHECK(task.vocab_size() == group.order());
    // Index of each permutation array, so a composed array maps back to a token.
    std::map<std::vector<int>, int> index;
    for (int a = 0; a < group.order(); ++a) {
      const auto p = group.permutation(a);
      index[std::vector<int>(p.begin(), p.end())] = a;
    }
    Batch batch;
    task.train_batch(123, 7, 0, 6, batch);
    REQUIRE(batch.batch == 6);
    REQUIRE(batch.length == 40);
    for (int i = 0; i < 6; ++i) {
      // state = x_1 * ... * x_t as an array: (state * x)(j) = x(state(j)).
      std::vector<int> state(group.degree());
      for (int j = 0; j < group.degree(); ++j) state[j] = j;
      for (int t = 0; t < 40; ++t) {
        const int x = batch.inputs[i * 40 + t];
        REQUIRE(x >= 0);
        REQUIRE(x < group.order());
        const auto px = group.permutation(x);
        for (auto& s : state) s = px[s];
        REQUIRE(batch.targets[i * 40 + t] == index.at(state));
      }
    }
  }
}

TEST_CASE("word problem: a batch is a pure function of (seed, step, index)", "[word_problem]") {
  const WordProblemTask task(make_cfg("S5", 16));
  Batch whole;
  task.train_batch(9, 3, 0, 8, whole);
  const auto expected = rows(whole);

  auto sharded = [&](const std::vector<std::pair<int, int>>& shards) {
    std::vector<std::vector<int>> all;
    for (const auto& [first, count] : shards) {
      Batch part;
      task.train_batch(9, 3, first, count, part);
      for (auto& r : rows(part)) all.push_back(r);
    }
    return all;
  };
  CHECK(sharded({{0, 2}, {2, 2}, {4, 4}}) == expected);
  CHECK(sharded({{0, 2}, {2, 2}, {4, 2}, {6, 2}}) == expected);
  CHECK(sharded({{4, 4}, {0, 4}}) != expected);  // order matters only through the indices
  const auto reordered = sharded({{4, 4}, {0, 4}});
  CHECK(std::equal(reordered.begin(), reordered.begin() + 4, expected.begin() + 4));

  Batch again;
  task.train_batch(9, 3, 0, 8, again);
  CHECK(rows(again) == expected);

  Batch other_step, other_seed;
  task.train_batch(9, 4, 0, 8, other_step);
  task.train_batch(10, 3, 0, 8, other_seed);
  CHECK(other_step.inputs != whole.inputs);
  CHECK(other_seed.inputs != whole.inputs);
  // Sequences within one batch differ from each other.
  CHECK(expected[0] != expected[1]);
}

TEST_CASE("word problem: eval data is fixed and separate from training", "[word_problem]") {
  const WordProblemTask task(make_cfg("A5", 12, {48, 12, 24, 48}));
  CHECK(task.train_length() == 12);
  CHECK(task.eval_lengths() == std::vector<int>{12, 48, 24});
  CHECK(WordProblemTask(make_cfg("A5", 12)).eval_lengths() == std::vector<int>{12});

  Batch e1, e2, e_next, train;
  task.eval_batch(5, 12, 0, 8, e1);
  task.eval_batch(5, 12, 0, 8, e2);
  task.eval_batch(5, 12, 1, 8, e_next);
  CHECK(e1.inputs == e2.inputs);
  CHECK(e1.targets == e2.targets);
  CHECK(e1.inputs != e_next.inputs);
  // Batch 1 of size 4 holds sequences 4..7 of batch 0 of size 8.
  Batch half;
  task.eval_batch(5, 12, 1, 4, half);
  CHECK(std::equal(half.inputs.begin(), half.inputs.end(), e1.inputs.begin() + 4 * 12));

  // No eval sequence equals a training sequence of the same seed over several steps.
  const auto eval_rows = rows(e1);
  for (std::int64_t step = 0; step < 20; ++step) {
    task.train_batch(5, step, 0, 8, train);
    for (const auto& r : rows(train)) CHECK(std::find(eval_rows.begin(), eval_rows.end(), r) == eval_rows.end());
  }
  Batch longer;
  task.eval_batch(5, 48, 0, 2, longer);
  CHECK(longer.length == 48);
  CHECK(longer.inputs.size() == 96u);
}

TEST_CASE("word problem: tokens are roughly uniform", "[word_problem]") {
  for (const std::string name : {"S3", "S5", "Z7"}) {
    INFO(name);
    const WordProblemTask task(make_cfg(name, 100));
    const int k = task.vocab_size();
    std::vector<double> counts(k, 0.0);
    Batch batch;
    for (std::int64_t step = 1; step <= 20; ++step) {
      task.train_batch(77, step, 0, 100, batch);
      for (int x : batch.inputs) counts[x] += 1.0;
    }
    const double n = 20 * 100 * 100, expected = n / k;
    double chi2 = 0.0;
    for (double c : counts) chi2 += (c - expected) * (c - expected) / expected;
    // chi-square with k-1 degrees of freedom: mean k-1, sd sqrt(2(k-1)); allow 6 sd.
    CHECK(chi2 < (k - 1) + 6.0 * std::sqrt(2.0 * (k - 1)));
    // Targets of a uniform random walk on a group are uniform too (after the first step).
    std::vector<double> target_counts(k, 0.0);
    for (int x : batch.targets) target_counts[x] += 1.0;
    for (double c : target_counts) CHECK(c > 0.5 * (batch.targets.size() / double(k)));
  }
}

TEST_CASE("word problem: registry and argument checks", "[word_problem]") {
  auto task = expt::data::make_task(make_cfg("S4", 10));
  CHECK(task->name() == "word_problem");
  CHECK(task->vocab_size() == 24);
  auto bad = make_cfg("S4", 10);
  bad.type = "copying";
  CHECK_THROWS_AS(expt::data::make_task(bad), std::invalid_argument);
  CHECK_THROWS_WITH(expt::data::make_task(bad), Catch::Contains("word_problem"));
  CHECK_THROWS_AS(expt::data::make_task(make_cfg("Q8", 10)), std::invalid_argument);
  CHECK_THROWS_AS(WordProblemTask(make_cfg("S3", 0)), std::invalid_argument);
  CHECK_THROWS_AS(WordProblemTask(make_cfg("S3", 4, {0})), std::invalid_argument);
  Batch b;
  CHECK_THROWS_AS(task->train_batch(1, -1, 0, 2, b), std::invalid_argument);
  CHECK_THROWS_AS(task->train_batch(1, 0, -1, 2, b), std::invalid_argument);
  CHECK_THROWS_AS(task->eval_batch(1, 0, 0, 2, b), std::invalid_argument);
}
