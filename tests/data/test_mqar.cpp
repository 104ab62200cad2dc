// MQAR against its definition (docs/tasks.md): every query's label is the value bound to that key
// in the context, every key is queried exactly once, keys and values come from their halves of the
// vocabulary, the first query gap follows the power law, and draws without replacement are uniform.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/data/mqar.hpp"
#include "tests/data/data_test_util.hpp"

using expt::data::Batch;
using expt::data::kIgnoreIndex;
using expt::data::MqarTask;

namespace {

expt::config::TaskConfig mqar_cfg(int vocab, int seq_len, int pairs, double power_a = 0.01, bool random_fill = false,
                                  std::vector<int> eval_lengths = {}) {
  expt::config::TaskConfig cfg;
  cfg.type = "mqar";
  cfg.vocab_size = vocab;
  cfg.seq_len = seq_len;
  cfg.num_kv_pairs = pairs;
  cfg.power_a = power_a;
  cfg.random_non_queries = random_fill;
  cfg.eval_lengths = std::move(eval_lengths);
  return cfg;
}

// Checks one sequence against the definition, reading it as a person would: context pairs first,
// then every labelled position must hold a key of the context and be labelled with its value.
void check_sequence(const Batch& b, int i, int V, int N, bool random_fill) {
  const int L = b.length;
  const std::int32_t* in = b.inputs.data() + static_cast<std::size_t>(i) * L;
  const std::int32_t* tg = b.targets.data() + static_cast<std::size_t>(i) * L;
  std::map<int, int> bound;  // key -> value from the context
  std::set<int> values;
  for (int j = 0; j < N; ++j) {
    const int key = in[2 * j], value = in[2 * j + 1];
    CHECK(key >= 1);
    CHECK(key < V / 2);
    CHECK(value >= V / 2);
    CHECK(value < V);
    CHECK(bound.emplace(key, value).second);  // keys distinct
    CHECK(values.insert(value).second);       // values distinct
    CHECK(tg[2 * j] == kIgnoreIndex);
    CHECK(tg[2 * j + 1] == kIgnoreIndex);
  }
  std::set<int> queried;
  for (int t = 2 * N; t < L; ++t) {
    if (tg[t] == kIgnoreIndex) {
      if (!random_fill) CHECK(in[t] == 0);
      continue;
    }
    CHECK((t - 2 * N) % 2 == 0);  // queries sit at even offsets of the query region
    const auto it = bound.find(in[t]);
    REQUIRE(it != bound.end());  // the query is a key of the context
    CHECK(tg[t] == it->second);  // labelled with the value bound to it
    CHECK(queried.insert(in[t]).second);
  }
  CHECK(queried.size() == static_cast<std::size_t>(N));  // every key queried exactly once
}

}  // namespace

TEST_CASE("mqar: labels are the values bound to the queried keys", "[mqar]") {
  struct Case {
    int V, L, N;
    bool random_fill;
  };
  for (const Case c : {Case{8192, 64, 4, false}, Case{8192, 128, 8, true}, Case{64, 32, 8, false},
                       Case{20, 40, 9, true}, Case{256, 256, 16, false}}) {
    INFO("V " << c.V << " L " << c.L << " N " << c.N << " random fill " << c.random_fill);
    const MqarTask task(mqar_cfg(c.V, c.L, c.N, 0.01, c.random_fill, {2 * c.L}));
    CHECK(task.vocab_size() == c.V);
    CHECK(task.eval_lengths() == std::vector<int>{c.L, 2 * c.L});
    Batch b;
    task.train_batch(11, 3, 0, 40, b);
    REQUIRE(b.length == c.L);
    for (int i = 0; i < b.batch; ++i) check_sequence(b, i, c.V, c.N, c.random_fill);
    task.eval_batch(11, 2 * c.L, 0, 20, b);  // longer eval length: same pairs, more query slots
    REQUIRE(b.length == 2 * c.L);
    for (int i = 0; i < b.batch; ++i) check_sequence(b, i, c.V, c.N, c.random_fill);
  }
}

TEST_CASE("mqar: random_non_queries only replaces the zero slots", "[mqar]") {
  const MqarTask plain(mqar_cfg(1024, 64, 4, 0.01, false));
  const MqarTask filled(mqar_cfg(1024, 64, 4, 0.01, true));
  Batch a, b;
  plain.train_batch(5, 2, 0, 50, a);
  filled.train_batch(5, 2, 0, 50, b);
  CHECK(a.targets == b.targets);
  int replaced = 0, nonzero_fill = 0;
  for (std::size_t k = 0; k < a.inputs.size(); ++k) {
    if (a.inputs[k] != 0) {
      CHECK(b.inputs[k] == a.inputs[k]);
    } else {
      ++replaced;
      nonzero_fill += b.inputs[k] != 0;
      CHECK(b.inputs[k] < 1024);
    }
  }
  CHECK(replaced > 0);
  CHECK(nonzero_fill > replaced * 9 / 10);  // uniform over [0, 1024): zero only by chance
}

TEST_CASE("mqar: the first query gap follows the power law", "[mqar]") {
  // The first draw takes gap g with probability a (g+1)^(a-1) / sum_i a i^(a-1) (i = 1..space).
  // Key 1's query offset (position - 2N) / 2 is that gap.
  const int V = 512, L = 48, N = 4, space = (L - 2 * N) / 2;
  const int samples = 12000;
  for (const double a : {0.01, 1.0}) {
    INFO("power_a " << a);
    const MqarTask task(mqar_cfg(V, L, N, a));
    Batch b;
    task.train_batch(99, 1, 0, samples, b);
    std::vector<int> counts(space, 0);
    for (int i = 0; i < samples; ++i) {
      const int key = b.inputs[static_cast<std::size_t>(i) * L];
      for (int t = 2 * N; t < L; ++t)
        if (b.inputs[static_cast<std::size_t>(i) * L + t] == key) ++counts[(t - 2 * N) / 2];
    }
    double total = 0;
    for (int g = 0; g < space; ++g) total += a * std::pow(g + 1.0, a - 1.0);
    for (int g = 0; g < space; ++g) {
      const double p = a * std::pow(g + 1.0, a - 1.0) / total;
      const double sigma = std::sqrt(samples * p * (1 - p));
      INFO("gap " << g << " expected " << samples * p << " got " << counts[g]);
      CHECK(std::abs(counts[g] - samples * p) < 5 * sigma + 1);
    }
  }
}

TEST_CASE("mqar: keys are drawn uniformly without replacement, in random order", "[mqar]") {
  // V = 12: keys from {1..5}; N = 2 gives 20 ordered pairs, each with probability 1/20.
  const MqarTask task(mqar_cfg(12, 8, 2));
  const int samples = 20000;
  Batch b;
  task.train_batch(3, 4, 0, samples, b);
  std::map<std::pair<int, int>, int> counts;
  for (int i = 0; i < samples; ++i) {
    const int k1 = b.inputs[static_cast<std::size_t>(i) * 8], k2 = b.inputs[static_cast<std::size_t>(i) * 8 + 2];
    REQUIRE(k1 != k2);
    ++counts[{k1, k2}];
  }
  CHECK(counts.size() == 20);
  const double p = 1.0 / 20, sigma = std::sqrt(samples * p * (1 - p));
  for (const auto& [pair, n] : counts) {
    INFO(pair.first << "," << pair.second << ": " << n);
    CHECK(std::abs(n - samples * p) < 5 * sigma);
  }
}

TEST_CASE("mqar: impossible shapes are rejected", "[mqar]") {
  CHECK_THROWS_AS(MqarTask(mqar_cfg(8192, 30, 8)), std::invalid_argument);  // 4N > L
  CHECK_THROWS_AS(MqarTask(mqar_cfg(8192, 33, 4)), std::invalid_argument);  // odd L
  CHECK_THROWS_AS(MqarTask(mqar_cfg(10, 64, 5)), std::invalid_argument);    // 5 keys from [1, 5)
  CHECK_THROWS_AS(MqarTask(mqar_cfg(8192, 64, 4, 0.01, false, {65})), std::invalid_argument);
  const MqarTask task(mqar_cfg(8192, 64, 4));
  Batch b;
  CHECK_THROWS_AS(task.eval_batch(0, 12, 0, 1, b), std::invalid_argument);  // shorter than 4N
}
