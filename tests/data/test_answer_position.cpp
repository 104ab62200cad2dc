// Parity and modular arithmetic (docs/tasks.md) against direct computation: the label of every
// sample recomputed from its tokens by an independent evaluator, one label per sequence at the last
// token, padding after it, and the training lengths covering [min_len, seq_len].
#include <catch2/catch.hpp>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/data/answer_position.hpp"
#include "tests/data/data_test_util.hpp"

using expt::data::AnswerPositionTask;
using expt::data::Batch;
using expt::data::kIgnoreIndex;
using expt::data::kPad;

namespace {

expt::config::TaskConfig answer_cfg(const std::string& type, int min_len, int seq_len, std::vector<int> eval = {},
                                    int modulus = 5) {
  expt::config::TaskConfig cfg;
  cfg.type = type;
  cfg.min_len = min_len;
  cfg.seq_len = seq_len;
  cfg.eval_lengths = std::move(eval);
  cfg.modulus = modulus;
  return cfg;
}

// The sample length of row i: its labelled position + 1. Checks there is exactly one label, that
// it is the last non-padding token and that only padding follows.
int sample_length(const Batch& b, int i) {
  const std::int32_t* in = b.inputs.data() + static_cast<std::size_t>(i) * b.length;
  const std::int32_t* tg = b.targets.data() + static_cast<std::size_t>(i) * b.length;
  int label_at = -1, labels = 0;
  for (int t = 0; t < b.length; ++t)
    if (tg[t] != kIgnoreIndex) {
      label_at = t;
      ++labels;
    }
  REQUIRE(labels == 1);
  for (int t = 0; t <= label_at; ++t) CHECK(in[t] != kPad);
  for (int t = label_at + 1; t < b.length; ++t) CHECK(in[t] == kPad);
  return label_at + 1;
}

// Reference evaluator, another algorithm than the task's: first every '*' is collapsed into its
// left operand (a pass over a list of numbers and operators), then '+' and '-' are applied left to
// right. Digits and operators come in as characters.
int reference_value(const std::vector<int>& digits, const std::vector<char>& ops, int m) {
  std::vector<long long> numbers = {digits[0]};
  std::vector<char> additive;
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (ops[k] == '*') {
      numbers.back() = numbers.back() * digits[k + 1] % m;
    } else {
      numbers.push_back(digits[k + 1]);
      additive.push_back(ops[k]);
    }
  }
  long long value = numbers[0];
  for (std::size_t k = 0; k < additive.size(); ++k) value += additive[k] == '+' ? numbers[k + 1] : -numbers[k + 1];
  return static_cast<int>(((value % m) + m) % m);
}

}  // namespace

TEST_CASE("parity: the label is the parity of the bits", "[parity]") {
  const AnswerPositionTask task(answer_cfg("parity", 2, 40, {64, 256}));
  CHECK(task.vocab_size() == 3);
  CHECK(task.train_length() == 40);
  CHECK(task.eval_lengths() == std::vector<int>{40, 64, 256});
  Batch b;
  task.train_batch(7, 12, 0, 2000, b);
  REQUIRE(b.length == 40);
  std::set<int> lengths;
  for (int i = 0; i < b.batch; ++i) {
    const int n = sample_length(b, i);
    lengths.insert(n);
    int ones = 0;
    for (int t = 0; t < n; ++t) {
      const int token = b.inputs[static_cast<std::size_t>(i) * 40 + t];
      REQUIRE((token == 1 || token == 2));
      ones += token == 2;
    }
    CHECK(b.targets[static_cast<std::size_t>(i) * 40 + n - 1] == (ones % 2 == 0 ? 1 : 2));
  }
  CHECK(lengths.size() == 39);  // every length of [2, 40]
  CHECK(*lengths.begin() == 2);
  CHECK(*lengths.rbegin() == 40);
  for (int L : {40, 64, 256}) {  // eval: every sample has exactly the eval length
    task.eval_batch(7, L, 1, 50, b);
    REQUIRE(b.length == L);
    for (int i = 0; i < b.batch; ++i) CHECK(sample_length(b, i) == L);
  }
}

TEST_CASE("mod_arith: evaluate_mod_arith on hand-computed expressions", "[mod_arith]") {
  using T = AnswerPositionTask;
  const auto d = [](int v) { return T::kFirstDigit + v; };
  // 2 + 3 * 4 = 14 = 4 mod 5
  CHECK(expt::data::evaluate_mod_arith(std::vector<std::int32_t>{d(2), T::kPlus, d(3), T::kTimes, d(4)}, 5) == 4);
  // 1 - 4 = -3 = 2 mod 5
  CHECK(expt::data::evaluate_mod_arith(std::vector<std::int32_t>{d(1), T::kMinus, d(4)}, 5) == 2);
  // 3 * 3 - 2 * 4 + 1 = 2 mod 7
  CHECK(expt::data::evaluate_mod_arith(
            std::vector<std::int32_t>{d(3), T::kTimes, d(3), T::kMinus, d(2), T::kTimes, d(4), T::kPlus, d(1)}, 7) ==
        2);
  CHECK(expt::data::evaluate_mod_arith(std::vector<std::int32_t>{d(4)}, 5) == 4);
}

TEST_CASE("mod_arith: labels equal the expression's value by direct computation", "[mod_arith]") {
  for (const int m : {5, 7, 2}) {
    INFO("modulus " << m);
    const AnswerPositionTask task(answer_cfg("mod_arith", 3, 40, {80}, m));
    CHECK(task.vocab_size() == 5 + m);
    Batch b;
    task.train_batch(21, 4, 8, 1500, b);
    std::set<int> lengths;
    for (int i = 0; i < b.batch; ++i) {
      const int n = sample_length(b, i);
      lengths.insert(n);
      REQUIRE(n % 2 == 0);
      const std::int32_t* in = b.inputs.data() + static_cast<std::size_t>(i) * b.length;
      std::vector<int> digits;
      std::vector<char> ops;
      for (int t = 0; t + 1 < n; ++t) {
        if (t % 2 == 0) {
          REQUIRE(in[t] >= 5);
          REQUIRE(in[t] < 5 + m);
          digits.push_back(in[t] - 5);
        } else {
          REQUIRE((in[t] >= 1 && in[t] <= 3));
          ops.push_back(in[t] == 1 ? '+' : in[t] == 2 ? '-' : '*');
        }
      }
      CHECK(in[n - 1] == AnswerPositionTask::kEquals);
      const int label = b.targets[static_cast<std::size_t>(i) * b.length + n - 1];
      CHECK(label - 5 == reference_value(digits, ops, m));
      // Short expressions: also exact integer arithmetic, reduced at the end.
      if (digits.size() <= 6) {
        long long value = 0, term = digits[0];
        int sign = 1;
        for (std::size_t k = 0; k < ops.size(); ++k) {
          if (ops[k] == '*') {
            term *= digits[k + 1];
          } else {
            value += sign * term;
            sign = ops[k] == '+' ? 1 : -1;
            term = digits[k + 1];
          }
        }
        value += sign * term;
        CHECK(label - 5 == ((value % m) + m) % m);
      }
    }
    CHECK(lengths == std::set<int>{4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40});
    task.eval_batch(21, 80, 0, 30, b);
    for (int i = 0; i < b.batch; ++i) CHECK(sample_length(b, i) == 80);
  }
}

TEST_CASE("answer-position tasks reject lengths they cannot build", "[parity][mod_arith]") {
  CHECK_THROWS_AS(AnswerPositionTask(answer_cfg("parity", 5, 4)), std::invalid_argument);
  CHECK_THROWS_AS(AnswerPositionTask(answer_cfg("mod_arith", 2, 41)), std::invalid_argument);
  CHECK_THROWS_AS(AnswerPositionTask(answer_cfg("mod_arith", 2, 40, {81})), std::invalid_argument);
  CHECK_THROWS_AS(AnswerPositionTask(answer_cfg("word_problem", 2, 40)), std::invalid_argument);
}
