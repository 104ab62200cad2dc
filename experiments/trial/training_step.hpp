// One training step of a trial, the same for `expt run`, `expt sweep` and `expt bench`: the rank's
// slice of the global batch, forward + loss, backward, the gradient summed over the ranks, clipping
// and the optimizer update. Data parallel: each rank takes a fixed slice of the global batch and the
// gradient is reduced in buckets while backward runs (overlapped, docs/distributed.md), or, with
// train.deterministic, summed over fixed micro-shards in a fixed tree order so that the result does
// not depend on the rank count. Loss and gradient norm are taken after the reduction, so every rank
// sees the same numbers and makes the same clipping and divergence decisions.
//
// What is not the step (evaluation, checkpoints, metrics, traces, progress) is the training loop's
// (experiments/trial/trainer.cpp) and its observers'.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/comm/communicator.hpp"
#include "core/comm/gradient_buckets.hpp"
#include "core/config/trial_config.hpp"
#include "core/data/task.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::experiments {

// The phases of a step, in order; `expt bench` times each.
enum class StepPhase { data, forward, backward, reduce, optimizer };
inline constexpr int kStepPhases = 5;
const char* to_string(StepPhase phase);

// Looks inside a step: where its phases start, and the two points where the gradient can be read.
// Every callback is optional; the trainer's loop and `expt bench` implement the ones they need.
class StepWatcher {
 public:
  virtual ~StepWatcher() = default;
  // From now until the next call the step is in `phase`. The deterministic path alternates
  // forward and backward once per micro-shard, so a phase can be entered several times a step.
  virtual void enter(StepPhase) {}
  // The global-batch gradient (summed over the ranks, loss-normalised), before clipping.
  virtual void gradient_ready(std::int64_t /*step*/, const data::Batch& /*local batch*/) {}
  // Clipped and finite; the optimizer runs next, so the store still holds the step's inputs.
  virtual void before_update(std::int64_t /*step*/, double /*lr*/) {}
};

struct StepOptions {
  // Unset: EXPT_GRAD_REDUCTION (overlapped | blocking), default overlapped. Used on several ranks
  // outside deterministic mode.
  std::optional<comm::ReductionMode> reduction;
  std::int64_t nan_at_step = -1;  // test hook (EXPT_TEST_NAN_AT_STEP): that step's loss becomes NaN
};

struct StepResult {
  bool stopped = false;  // some rank asked to stop: the step was abandoned before its forward
  double loss = 0;       // mean over every labelled position of the global batch
  double grad_norm = 0;  // global norm before clipping
  double lr = 0;
  bool finite = true;  // loss and norm finite; otherwise the optimizer did not run (DIVERGED)
};

class TrainingStep {
 public:
  // Builds the task, the model (parameters initialised from cfg.seed) and the optimizer on `comm`.
  // Throws std::runtime_error when train.batch_size cannot be shared by the ranks.
  TrainingStep(const config::TrialConfig& cfg, comm::Communicator& comm, const StepOptions& options);

  // Step `step` (1-based; the schedule clamps it to train.steps). `stop_requested`: this rank was
  // asked to stop; every rank agrees on it with the batch's label count, before the forward.
  StepResult run(std::int64_t step, bool stop_requested, StepWatcher* watcher = nullptr);

  const data::Task& task() const { return *task_; }
  nn::Model<float>& model() { return model_; }
  const nn::Model<float>& model() const { return model_; }
  nn::ParameterStore<float>& store() { return store_; }
  const nn::ParameterStore<float>& store() const { return store_; }
  optim::Optimizer& optimizer() { return *optimizer_; }
  const optim::Optimizer& optimizer() const { return *optimizer_; }
  int vocab() const { return vocab_; }
  int local_batch() const { return local_batch_; }
  // train.deterministic: the global batch is cut into this many micro-shards.
  int micro_shards() const { return micro_shards_; }
  // Global batch tokens per step.
  std::int64_t tokens_per_step() const;
  // The overlapped or blocking bucket reduction; null on one rank and in deterministic mode.
  const comm::BucketedAllreduce* reducer() const { return reducer_.get(); }

 private:
  // Sums equal-length vectors pushed one at a time as a perfect binary tree in push order.
  class TreeSum {
   public:
    void reset() { depth_ = 0; }
    void push(std::span<const float> g);
    std::span<const float> root() const;

   private:
    std::vector<std::vector<float>> sums_;
    std::vector<long> leaves_;
    std::size_t depth_ = 0;
  };

  double data_parallel_gradient(const data::Batch& batch, double n_labels, StepWatcher* watcher);
  double deterministic_gradient(const data::Batch& batch, double n_labels, StepWatcher* watcher);

  const config::TrialConfig& cfg_;
  comm::Communicator& comm_;
  StepOptions options_;
  std::unique_ptr<data::Task> task_;
  int vocab_;
  nn::ParameterStore<float> store_;
  nn::Model<float> model_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::vector<optim::ParamRef> refs_;
  int local_batch_ = 1;
  int micro_shards_ = 1;
  std::unique_ptr<comm::BucketedAllreduce> reducer_;
  data::Batch batch_;
  std::vector<float> dlogits_;
  TreeSum tree_;
  std::vector<float> gathered_;         // deterministic: every rank's partial gradient sum
  std::vector<double> shard_loss_;      // deterministic: this rank's micro-shard loss sums
  std::vector<double> all_shard_loss_;  // deterministic: every micro-shard's, in shard order
};

}  // namespace expt::experiments
