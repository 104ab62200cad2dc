#include "core/data/mqar.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/data/sampling.hpp"

namespace expt::data {

namespace {

// Draws `count` distinct integers of [0, n) in random order: draw j is uniform over the n - j
// values not drawn yet (word first + j picks its rank among them). Exactly `count` words are used,
// whatever the values, so the word layout of a sequence is fixed.
void draw_distinct(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b, std::uint64_t first,
                   int count, std::uint32_t n, std::vector<std::uint32_t>& out) {
  out.clear();
  std::vector<std::uint32_t> sorted;  // the values drawn so far, ascending
  for (int j = 0; j < count; ++j) {
    // The rank-r value among those not drawn: step over every drawn value <= the candidate.
    std::uint32_t v = rng::uniform_int(seed, stream, a, b, first + j, n - static_cast<std::uint32_t>(j));
    for (std::uint32_t taken : sorted)
      if (taken <= v) ++v;
    out.push_back(v);
    sorted.insert(std::upper_bound(sorted.begin(), sorted.end(), v), v);
  }
}

}  // namespace

MqarTask::MqarTask(const config::TaskConfig& cfg)
    : vocab_size_(cfg.vocab_size),
      num_kv_pairs_(cfg.num_kv_pairs),
      seq_len_(cfg.seq_len),
      power_a_(cfg.power_a),
      random_non_queries_(cfg.random_non_queries) {
  if (num_kv_pairs_ < 1) throw std::invalid_argument("mqar: num_kv_pairs must be >= 1");
  if (num_kv_pairs_ > vocab_size_ / 2 - 1)
    throw std::invalid_argument("mqar: num_kv_pairs exceeds the vocab_size / 2 - 1 distinct keys");
  if (!(power_a_ > 0) || !std::isfinite(power_a_)) throw std::invalid_argument("mqar: power_a must be > 0");
  check_length(seq_len_);
  eval_lengths_.push_back(seq_len_);
  for (int length : cfg.eval_lengths) {
    check_length(length);
    if (std::find(eval_lengths_.begin(), eval_lengths_.end(), length) == eval_lengths_.end())
      eval_lengths_.push_back(length);
  }
}

void MqarTask::check_length(int length) const {
  if (length < 1 || length % 2 != 0 || 4 * static_cast<std::int64_t>(num_kv_pairs_) > length)
    throw std::invalid_argument("mqar: length " + std::to_string(length) +
                                " must be even and at least 4 * num_kv_pairs = " + std::to_string(4 * num_kv_pairs_));
}

std::vector<double> MqarTask::gap_weights(int length) const {
  const int space = (length - 2 * num_kv_pairs_) / 2;
  std::vector<double> w(static_cast<std::size_t>(space));
  for (int i = 0; i < space; ++i) w[static_cast<std::size_t>(i)] = power_a_ * std::pow(i + 1.0, power_a_ - 1.0);
  return w;
}

void MqarTask::fill_sequence(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b,
                             const std::vector<double>& gap_weights, int row, Batch& out) const {
  const int N = num_kv_pairs_;
  const int L = out.length;
  const auto half = static_cast<std::uint32_t>(vocab_size_ / 2);
  std::int32_t* inputs = out.inputs.data() + static_cast<std::size_t>(row) * L;
  std::int32_t* targets = out.targets.data() + static_cast<std::size_t>(row) * L;

  // Keys from [1, V/2) (V/2 - 1 candidates), values from [V/2, V) (V - V/2 candidates).
  std::vector<std::uint32_t> keys, values;
  draw_distinct(seed, stream, a, b, 0, N, half - 1, keys);
  draw_distinct(seed, stream, a, b, static_cast<std::uint64_t>(N), N, static_cast<std::uint32_t>(vocab_size_) - half,
                values);
  for (int j = 0; j < N; ++j) {
    inputs[2 * j] = static_cast<std::int32_t>(keys[j] + 1);
    inputs[2 * j + 1] = static_cast<std::int32_t>(values[j] + half);
  }

  // Gaps: successive weighted draws without replacement. Draw j takes u * (weight left) and walks
  // the free slots until the running sum passes it; rounding can leave u just above the last
  // partial sum, and the last free slot is then the one drawn.
  std::vector<double> weight = gap_weights;
  double remaining = 0;
  for (double w : weight) remaining += w;
  for (int j = 0; j < N; ++j) {
    const double u = unit32(seed, stream, a, b, 2 * static_cast<std::uint64_t>(N) + j) * remaining;
    std::size_t chosen = weight.size();
    double running = 0;
    for (std::size_t i = 0; i < weight.size(); ++i) {
      if (weight[i] == 0) continue;
      chosen = i;
      running += weight[i];
      if (running > u) break;
    }
    remaining -= weight[chosen];
    weight[chosen] = 0;
    const int position = 2 * N + 2 * static_cast<int>(chosen);
    inputs[position] = inputs[2 * j];       // the query: key j
    targets[position] = inputs[2 * j + 1];  // its label: value j
  }

  if (random_non_queries_) {
    for (int t = 0; t < L; ++t)
      if (inputs[t] == 0)
        inputs[t] = static_cast<std::int32_t>(rng::uniform_int(
            seed, stream, a, b, 3 * static_cast<std::uint64_t>(N) + t, static_cast<std::uint32_t>(vocab_size_)));
  }
}

void MqarTask::train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const {
  if (step < 0 || first < 0 || count < 0)
    throw std::invalid_argument("mqar: train_batch needs step, first, count >= 0");
  out.resize(count, seq_len_);
  const auto weights = gap_weights(seq_len_);
  for (int j = 0; j < count; ++j)
    fill_sequence(seed, rng::Stream::train_data, static_cast<std::uint64_t>(step),
                  static_cast<std::uint64_t>(first) + j, weights, j, out);
}

void MqarTask::eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const {
  if (index < 0 || count < 0) throw std::invalid_argument("mqar: eval_batch needs index, count >= 0");
  check_length(length);
  out.resize(count, length);
  const auto weights = gap_weights(length);
  for (int j = 0; j < count; ++j)
    fill_sequence(seed, rng::Stream::eval_data, static_cast<std::uint64_t>(length),
                  static_cast<std::uint64_t>(index) * static_cast<std::uint64_t>(count) + j, weights, j, out);
}

}  // namespace expt::data
