// Group word problem (state tracking, docs/tasks.md). Vocabulary = the elements of a finite group
// G (vocab_size = |G|, token k = element index k of groups.hpp). Inputs x_1..x_T are i.i.d. uniform
// over G; the target at every position is the prefix product
//   y_t = x_1 * x_2 * ... * x_t          (y_0 = identity, y_t = y_{t-1} * x_t),
// with the multiplication convention of FiniteGroup ("first x_1, then x_2, ...").
//
// Randomness: token t of training sequence i of step s is
//   rng::uniform_int(seed, Stream::train_data, s, i, t, |G|),
// so a step's batch is a pure function of (seed, step, sequence index), whatever the sharding.
// Sequence j of eval batch `index` at length L uses Stream::eval_data at (L, index*count + j): a
// separate stream from training, and the same sequences at every eval call.
#pragma once

#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/data/groups.hpp"
#include "core/data/task.hpp"

namespace expt::data {

class WordProblemTask : public Task {
 public:
  // Uses cfg.group, cfg.seq_len and cfg.eval_lengths; throws std::invalid_argument for an unknown
  // group or a length < 1.
  explicit WordProblemTask(const config::TaskConfig& cfg);

  std::string name() const override { return "word_problem"; }
  int vocab_size() const override { return group_.order(); }
  int train_length() const override { return seq_len_; }
  // seq_len first, then cfg.eval_lengths in their order, duplicates removed.
  std::vector<int> eval_lengths() const override { return eval_lengths_; }

  void train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const override;
  void eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const override;

  const FiniteGroup& group() const { return group_; }

 private:
  FiniteGroup group_;
  int seq_len_;
  std::vector<int> eval_lengths_;
};

}  // namespace expt::data
