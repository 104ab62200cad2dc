#include "core/data/word_problem.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/util/random.hpp"

namespace expt::data {

namespace {

// Fills row `row` of `out` with the sequence addressed by (seed, stream, a, b): tokens drawn
// uniformly over G, targets the running product.
void fill_sequence(const FiniteGroup& group, std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b,
                   int row, Batch& out) {
  const auto n = static_cast<std::uint32_t>(group.order());
  const std::size_t base = static_cast<std::size_t>(row) * out.length;
  int prefix = group.identity();
  for (int t = 0; t < out.length; ++t) {
    const int x = static_cast<int>(rng::uniform_int(seed, stream, a, b, static_cast<std::uint64_t>(t), n));
    prefix = group.multiply(prefix, x);
    out.inputs[base + t] = x;
    out.targets[base + t] = prefix;
  }
}

}  // namespace

WordProblemTask::WordProblemTask(const config::TaskConfig& cfg) : group_(cfg.group), seq_len_(cfg.seq_len) {
  if (seq_len_ < 1) throw std::invalid_argument("word_problem: seq_len must be >= 1");
  eval_lengths_.push_back(seq_len_);
  for (int length : cfg.eval_lengths) {
    if (length < 1) throw std::invalid_argument("word_problem: eval lengths must be >= 1");
    if (std::find(eval_lengths_.begin(), eval_lengths_.end(), length) == eval_lengths_.end())
      eval_lengths_.push_back(length);
  }
}

void WordProblemTask::train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const {
  if (step < 0 || first < 0 || count < 0)
    throw std::invalid_argument("word_problem: train_batch needs step, first, count >= 0");
  out.resize(count, seq_len_);
  for (int j = 0; j < count; ++j)
    fill_sequence(group_, seed, rng::Stream::train_data, static_cast<std::uint64_t>(step),
                  static_cast<std::uint64_t>(first) + j, j, out);
}

void WordProblemTask::eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const {
  if (length < 1 || index < 0 || count < 0)
    throw std::invalid_argument("word_problem: eval_batch needs length >= 1, index >= 0, count >= 0");
  out.resize(count, length);
  for (int j = 0; j < count; ++j)
    fill_sequence(group_, seed, rng::Stream::eval_data, static_cast<std::uint64_t>(length),
                  static_cast<std::uint64_t>(index) * static_cast<std::uint64_t>(count) + j, j, out);
}

}  // namespace expt::data
