#include "core/data/answer_position.hpp"

#include <algorithm>
#include <stdexcept>

namespace expt::data {

int evaluate_mod_arith(std::span<const std::int32_t> expression, int modulus) {
  using T = AnswerPositionTask;
  const std::int64_t m = modulus;
  // value = sum of signed terms; a term is a product of digits. `term` is the running product and
  // `sign` the sign in front of it; both are folded into `sum` when a '+' or '-' ends the term.
  std::int64_t sum = 0, term = 0, sign = 1;
  for (std::size_t i = 0; i < expression.size(); ++i) {
    const std::int32_t token = expression[i];
    if (i % 2 == 0) {
      const std::int64_t digit = token - T::kFirstDigit;
      if (digit < 0 || digit >= m) throw std::invalid_argument("mod_arith: expected a digit token");
      const bool multiplies = i > 0 && expression[i - 1] == T::kTimes;
      term = multiplies ? (term * digit) % m : digit;
    } else {
      if (token != T::kPlus && token != T::kMinus && token != T::kTimes)
        throw std::invalid_argument("mod_arith: expected an operator token");
      if (token == T::kTimes) continue;
      sum = (sum + sign * term) % m;
      sign = token == T::kPlus ? 1 : -1;
    }
  }
  sum = (sum + sign * term) % m;
  return static_cast<int>((sum + m) % m);
}

AnswerPositionTask::AnswerPositionTask(const config::TaskConfig& cfg)
    : name_(cfg.type), seq_len_(cfg.seq_len), min_len_(cfg.min_len), modulus_(cfg.modulus) {
  if (name_ == "parity") {
    vocab_size_ = 3;
  } else if (name_ == "mod_arith") {
    if (modulus_ < 2) throw std::invalid_argument("mod_arith: modulus must be >= 2");
    vocab_size_ = kFirstDigit + modulus_;
  } else {
    throw std::invalid_argument("answer-position task: unknown type '" + name_ + "' (parity or mod_arith)");
  }
  check_length(seq_len_);
  if (min_len_ < 1 || min_len_ > seq_len_) throw std::invalid_argument(name_ + ": min_len must be in [1, seq_len]");
  eval_lengths_.push_back(seq_len_);
  for (int length : cfg.eval_lengths) {
    check_length(length);
    if (std::find(eval_lengths_.begin(), eval_lengths_.end(), length) == eval_lengths_.end())
      eval_lengths_.push_back(length);
  }
}

void AnswerPositionTask::check_length(int length) const {
  if (length < 1) throw std::invalid_argument(name_ + ": lengths must be >= 1");
  if (!is_parity() && length % 2 != 0)
    throw std::invalid_argument("mod_arith: length " + std::to_string(length) +
                                " is odd (a sample is digit-operator pairs ending in '=')");
}

void AnswerPositionTask::fill_sample(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b, int n,
                                     int row, Batch& out) const {
  std::int32_t* inputs = out.inputs.data() + static_cast<std::size_t>(row) * out.length;
  std::int32_t* targets = out.targets.data() + static_cast<std::size_t>(row) * out.length;
  if (is_parity()) {
    int ones = 0;
    for (int t = 0; t < n; ++t) {
      const auto bit = static_cast<std::int32_t>(rng::uniform_int(seed, stream, a, b, 1 + t, 2));
      inputs[t] = 1 + bit;
      ones += bit;
    }
    targets[n - 1] = 1 + ones % 2;
    return;
  }
  // n - 1 expression tokens (digits at even positions, operators at odd ones), then '='.
  for (int t = 0; t + 1 < n; ++t) {
    inputs[t] = t % 2 == 0 ? kFirstDigit + static_cast<std::int32_t>(rng::uniform_int(
                                               seed, stream, a, b, 1 + t, static_cast<std::uint32_t>(modulus_)))
                           : kPlus + static_cast<std::int32_t>(rng::uniform_int(seed, stream, a, b, 1 + t, 3));
  }
  inputs[n - 1] = kEquals;
  targets[n - 1] = kFirstDigit + evaluate_mod_arith({inputs, static_cast<std::size_t>(n) - 1}, modulus_);
}

void AnswerPositionTask::train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const {
  if (step < 0 || first < 0 || count < 0)
    throw std::invalid_argument(name_ + ": train_batch needs step, first, count >= 0");
  out.resize(count, seq_len_);
  // Lengths lo, lo + stride, ..., seq_len (mod_arith: the even ones).
  const int stride = is_parity() ? 1 : 2;
  const int lo = is_parity() ? min_len_ : std::max(2, min_len_ + min_len_ % 2);
  const auto choices = static_cast<std::uint32_t>((seq_len_ - lo) / stride + 1);
  for (int j = 0; j < count; ++j) {
    const auto a = static_cast<std::uint64_t>(step);
    const auto b = static_cast<std::uint64_t>(first) + j;
    const int n = lo + stride * static_cast<int>(rng::uniform_int(seed, rng::Stream::train_data, a, b, 0, choices));
    fill_sample(seed, rng::Stream::train_data, a, b, n, j, out);
  }
}

void AnswerPositionTask::eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const {
  if (index < 0 || count < 0) throw std::invalid_argument(name_ + ": eval_batch needs index, count >= 0");
  check_length(length);
  out.resize(count, length);
  for (int j = 0; j < count; ++j)
    fill_sample(seed, rng::Stream::eval_data, static_cast<std::uint64_t>(length),
                static_cast<std::uint64_t>(index) * static_cast<std::uint64_t>(count) + j, length, j, out);
}

}  // namespace expt::data
