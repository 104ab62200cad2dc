// Answer-position tasks (docs/tasks.md; the xLSTM formal-language setup of Grazzi et al.): one
// label per sequence, at its last token, then padding.
//
// A sample of length n holds n input tokens, is labelled at position n - 1 (the model predicts the
// answer after reading the whole expression) and is padded with PAD = 0 up to the batch width;
// every other target is the ignore index. The reference code builds a sequence with the answer
// appended and shifts it (input = seq[:-1], target = seq[1:]); its length counts the answer too, so
// its training lengths 3..40 are n = 2..39 here.
//
//   parity     vocab 3: 0 PAD, 1 = bit 0, 2 = bit 1. n bits i.i.d. uniform; the label is
//              1 + (number of 1 bits) mod 2, i.e. the token of the parity bit.
//   mod_arith  vocab 5 + m (m = modulus): 0 PAD, 1 '+', 2 '-', 3 '*', 4 '=', 5 + d = digit d of
//              0..m-1. n is even: d_1 o_1 d_2 o_2 ... o_{k-1} d_k '=' with k = n / 2 digits
//              (uniform) and k - 1 operators (uniform over + - *); the label is 5 + the value of
//              the expression mod m with the usual precedence ('*' before '+' and '-', left to right).
//
// Training lengths are uniform over [min_len, seq_len] (mod_arith: over its even values) and the
// batch width is seq_len. Eval at length L: every sample has length exactly L (batch width L), so
// per-length accuracy is the accuracy at that length (length extrapolation for L > seq_len).
//
// Randomness: sequence i of step s uses words of (seed, Stream::train_data, s, i): word 0 draws
// the length, word 1 + t token t. Eval sequence n at length L uses (seed, Stream::eval_data, L, n).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/data/task.hpp"
#include "core/util/random.hpp"

namespace expt::data {

inline constexpr std::int32_t kPad = 0;

class AnswerPositionTask : public Task {
 public:
  // cfg.type parity or mod_arith; uses seq_len, min_len, eval_lengths and (mod_arith) modulus.
  // Throws std::invalid_argument for lengths the task cannot build (see above).
  explicit AnswerPositionTask(const config::TaskConfig& cfg);

  std::string name() const override { return name_; }
  int vocab_size() const override { return vocab_size_; }
  int train_length() const override { return seq_len_; }
  std::vector<int> eval_lengths() const override { return eval_lengths_; }

  void train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const override;
  void eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const override;

  // mod_arith token codes.
  static constexpr std::int32_t kPlus = 1, kMinus = 2, kTimes = 3, kEquals = 4, kFirstDigit = 5;
  int modulus() const { return modulus_; }

 private:
  bool is_parity() const { return name_ == "parity"; }
  void check_length(int length) const;
  // Writes a sample of length n into row `row` of `out` from the words of (seed, stream, a, b).
  void fill_sample(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b, int n, int row,
                   Batch& out) const;

  std::string name_;
  int vocab_size_ = 0;
  int seq_len_ = 0;
  int min_len_ = 0;
  int modulus_ = 0;
  std::vector<int> eval_lengths_;
};

// The value mod m of a mod_arith expression (digit and operator tokens, without '='), evaluated
// left to right with '*' binding tighter than '+' and '-'; in [0, m).
int evaluate_mod_arith(std::span<const std::int32_t> expression, int modulus);

}  // namespace expt::data
