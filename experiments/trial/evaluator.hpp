// Evaluation of a trial's model on the fixed eval set: for every eval length, train.eval_batches
// batches of train.batch_size sequences, split over the ranks so that the set (and, in
// deterministic mode, every sum's order) is the same whatever the rank count (docs/decisions.md 14).
#pragma once

#include <cstdint>
#include <vector>

#include "core/comm/communicator.hpp"
#include "core/config/trial_config.hpp"
#include "core/io/metrics.hpp"
#include "experiments/trial/training_step.hpp"

namespace expt::experiments {

struct EvalResult {
  std::vector<float> values;                   // loss, token_acc, seq_acc per eval length
  std::vector<std::vector<float>> prefix_acc;  // per eval length, [length]
  double train_length_loss = 0;                // the loss at the first eval length
};

class Evaluator {
 public:
  // Evaluates the model of `step` (its task and micro-shards) on `comm`.
  Evaluator(const config::TrialConfig& cfg, comm::Communicator& comm, TrainingStep& step);

  // A collective: every rank calls it and gets the same result.
  EvalResult evaluate();
  // The metrics columns: loss@L, token_acc@L, seq_acc@L per eval length L, and the prefix lengths.
  const io::EvalSchema& schema() const { return schema_; }

 private:
  // One forward of `batch` at eval length L; adds loss, labelled count, correct labels and the
  // first-error histogram [L + 1] into acc[0..3+L].
  void accumulate(const data::Batch& batch, int L, double* acc);

  const config::TrialConfig& cfg_;
  comm::Communicator& comm_;
  TrainingStep& step_;
  io::EvalSchema schema_;
  std::vector<std::uint8_t> correct_;
};

}  // namespace expt::experiments
