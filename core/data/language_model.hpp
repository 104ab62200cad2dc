// Language modelling on a corpus: next-token prediction at every position of a window.
//
//   task.type text    byte-level: the files of task.paths as bytes (vocab_size 256)
//   task.type tokens  token files (task.train_path, task.val_path; nanoGPT .bin or llm.c shards),
//                     vocab_size from the config
//
// A sequence of length T is a window w of T + 1 consecutive tokens of one run of a split (runs:
// token_corpus.hpp): inputs = w[0:T], targets = w[1:T+1], every position labelled.
//
// Training: window k of the train split, k = floor(u * W / 2^64) with u the 64-bit word
// (seed, Stream::train_data, step, sequence index) and W the number of windows of T + 1 tokens: a
// pure function of (seed, step, sequence index), uniform over every start position of the split.
// Eval: sequence n at length L is window floor(frac(n * g) * W_L) of the validation split, g the
// golden-ratio fraction 0.6180339887... (a Weyl sequence): fixed positions spread evenly over the
// whole split for any number of eval sequences, the same for every seed so that trials compare on
// one validation set.
//
// Text split: the files are cut into blocks of split_block_bytes (the last block of a file is
// shorter; blocks never span two files), numbered b = 0, 1, 2, ... across the files in order. Block
// b goes to validation when floor((b + 1) * f) > floor(b * f), f = val_fraction: an evenly spread
// fraction f of the blocks (f = 0.1: blocks 9, 19, 29, ...), the same on every machine.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/data/mapped_file.hpp"
#include "core/data/task.hpp"
#include "core/data/token_corpus.hpp"

namespace expt::data {

class LanguageModelTask : public Task {
 public:
  // Maps the files of cfg (type text or tokens), splits or checks them, and verifies that the
  // train split holds a window of seq_len + 1 tokens and the validation split one of L + 1 for every
  // eval length. Throws std::runtime_error (files, formats, token ids, splits too small) or
  // std::invalid_argument (bad lengths) with the file and the config key concerned.
  explicit LanguageModelTask(const config::TaskConfig& cfg);

  std::string name() const override { return name_; }
  int vocab_size() const override { return vocab_size_; }
  int train_length() const override { return seq_len_; }
  std::vector<int> eval_lengths() const override { return eval_lengths_; }

  void train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const override;
  void eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const override;

  const TokenSplit& train_split() const { return train_; }
  const TokenSplit& validation_split() const { return validation_; }

 private:
  // Decodes window k of `split` into row `row` of `out` (inputs, then targets shifted by one) and
  // checks every token id against the vocabulary.
  void fill_row(const TokenSplit& split, std::uint64_t k, int row, Batch& out) const;

  std::string name_;
  int vocab_size_ = 0;
  int seq_len_ = 0;
  std::vector<int> eval_lengths_;
  std::size_t header_bytes_ = 0;  // bytes before the first token of each file (token indices in errors)
  std::vector<std::unique_ptr<MappedFile>> files_;
  TokenSplit train_, validation_;
  std::uint64_t train_windows_ = 0;
};

}  // namespace expt::data
