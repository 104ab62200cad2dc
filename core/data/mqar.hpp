// Multi-query associative recall (MQAR), Zoology's recipe (docs/tasks.md; zoology/data/
// multiquery_ar.py). Vocabulary V, sequence length L (even), N key-value pairs, num_passes = 1:
//
//   keys   k_1..k_N: N distinct tokens from [1, V/2), in random order
//   values v_1..v_N: N distinct tokens from [V/2, V), in random order; k_j is bound to v_j
//   inputs[0, 2N)   = k_1 v_1 k_2 v_2 ... k_N v_N                       (the context)
//   query region    positions [2N, L): space = (L - 2N) / 2 query slots at even offsets
//   gaps g_1..g_N   N distinct integers of [0, space), drawn one after another without
//                   replacement with probability proportional to a * i^(a-1), i = g + 1
//                   (a = power_a; a power law favouring short gaps, a = 1 is uniform)
//   inputs[2N + 2 g_j] = k_j and targets[2N + 2 g_j] = v_j: the label sits where the input is the
//   query key (next-token prediction of its value); every other target is the ignore index
//   every other input is 0, or with random_non_queries a uniform token of [0, V) (which may repeat
//   a key: a distractor)
//
// Requirements (checked by the config schema and here): L even, 4N <= L, N <= V/2 - 1. Zoology
// also asserts V > L; nothing in the construction needs it, so it is not required.
// Eval at a longer length L' keeps N pairs and spreads the queries over space' = (L' - 2N) / 2.
//
// Randomness: sequence i of step s uses the words of (seed, Stream::train_data, s, i): keys from
// words [0, N), values [N, 2N), gaps [2N, 3N), random fill [3N, 3N + L). Eval sequence n at length
// L uses (seed, Stream::eval_data, L, n).
#pragma once

#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/data/task.hpp"
#include "core/util/random.hpp"

namespace expt::data {

class MqarTask : public Task {
 public:
  // Uses cfg.vocab_size, num_kv_pairs, seq_len, eval_lengths, power_a, random_non_queries; throws
  // std::invalid_argument when the requirements above fail.
  explicit MqarTask(const config::TaskConfig& cfg);

  std::string name() const override { return "mqar"; }
  int vocab_size() const override { return vocab_size_; }
  int train_length() const override { return seq_len_; }
  std::vector<int> eval_lengths() const override { return eval_lengths_; }

  void train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const override;
  void eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const override;

  int num_kv_pairs() const { return num_kv_pairs_; }

 private:
  void check_length(int length) const;
  // Fills row `row` of `out` (length out.length) with the sequence addressed by (seed, stream, a, b);
  // gap_weights[i] = a * (i + 1)^(a-1) for the query slots of that length.
  void fill_sequence(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b,
                     const std::vector<double>& gap_weights, int row, Batch& out) const;
  std::vector<double> gap_weights(int length) const;

  int vocab_size_;
  int num_kv_pairs_;
  int seq_len_;
  double power_a_;
  bool random_non_queries_;
  std::vector<int> eval_lengths_;
};

}  // namespace expt::data
