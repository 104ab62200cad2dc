// `expt data preview` and `expt data dump`: what a trial's task feeds the model, for a person
// (decoded samples with their labels) and for a program (an HDF5 file of exactly the sequences the
// trainer would see).
//
//   expt data preview CONFIG                  -> data_preview(cfg, count, std::cout)
//   expt data dump CONFIG --split train|eval --count N --out FILE.h5
//                                             -> data_dump(cfg, split, N, FILE.h5)
//
// Both return an exit code of cli.hpp: 0 done, 2 bad arguments (split, count), 1 the task cannot be
// built or the file cannot be written (the reason is printed to stderr as "expt: error: ...").
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>

#include "core/config/trial_config.hpp"

namespace expt::experiments {

// Prints the task's summary (vocabulary, lengths, ignore index), then the first `count` training
// sequences of the run (step 1 onwards, the order the trainer uses) and the first eval sequence at
// every eval length, each decoded (core/data/token_text.hpp) with its labels: the labelled
// positions with their label, or the whole target sequence when every position is labelled.
int data_preview(const config::TrialConfig& cfg, int count, std::ostream& out);

// Writes FILE.h5 (replaced whole: written to FILE.h5.tmp, then renamed):
//   /inputs   int32 [N, T]   the input tokens
//   /targets  int32 [N, T]   the labels; the ignore index where there is no label
//   /step     int64 [N]      train: the trainer step that uses the row (1, 2, ...); eval: -1
//   /index    int64 [N]      train: the row's place in that step's global batch; eval: its eval
//                            sequence number (the trainer evaluates 0 .. eval_batches*batch_size-1)
//   /eval/<L>/inputs, /eval/<L>/targets   (split eval) the same N sequences at every eval length
//                            L; /inputs and /targets are those at the training length
//   attributes: task, split, seed, vocab_size, ignore_index, train_length, length (T),
//               eval_lengths (int64 array), batch_size, count
// Train rows are the trainer's global batches in order: row r is sequence r mod batch_size of
// step 1 + r / batch_size, whatever the number of ranks.
int data_dump(const config::TrialConfig& cfg, const std::string& split, int count, const std::filesystem::path& out);

}  // namespace expt::experiments
