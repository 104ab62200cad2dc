// The observers of a trial's training loop (experiments/trial/training_observer.hpp): each one
// thing that watches training, attached by the trainer in this order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>

#include "core/comm/communicator.hpp"
#include "core/config/trial_config.hpp"
#include "core/io/metrics.hpp"
#include "core/io/trial_directory.hpp"
#include "experiments/trial/evaluator.hpp"
#include "experiments/trial/grad_trace.hpp"
#include "experiments/trial/optimizer_diagnostics.hpp"
#include "experiments/trial/progress.hpp"
#include "experiments/trial/trainer.hpp"
#include "experiments/trial/training_observer.hpp"
#include "experiments/trial/trial_log.hpp"

namespace expt::experiments {

// Rank 0: the metrics segments (train rows, eval rows, events), rotated at every checkpoint in the
// order docs/results-format.md fixes: close the segment, write the checkpoint, COMMIT, new segment.
class MetricsRecorder final : public TrainingObserver {
 public:
  MetricsRecorder(const io::TrialDirectory& dir, const io::EvalSchema& schema, int attempt);
  void append_eval(const io::EvalRow& row);

  void on_start(std::int64_t step) override;
  void after_step(const StepRecord& r) override;
  void before_checkpoint(std::int64_t step, double wall_s) override;
  void after_checkpoint(std::int64_t step) override;
  void on_interrupt(std::int64_t step) override;
  void on_end(const io::TrialSummary& summary) override;

 private:
  void open(std::int64_t first_step);

  const io::TrialDirectory& dir_;
  const io::EvalSchema& schema_;
  int attempt_;
  std::unique_ptr<io::MetricsSegmentWriter> segment_;
};

// Every rank: evaluates the initial model (step 0) and every step on the eval grid (multiples of
// train.eval_every, and the last step), keeps the last and best eval loss (checkpointed as
// trainer/last_eval_loss and trainer/best_eval_loss) and gives the rows to `metrics` (rank 0).
class EvaluationRecorder final : public TrainingObserver {
 public:
  EvaluationRecorder(const config::TrialConfig& cfg, Evaluator& evaluator, MetricsRecorder* metrics, TrialLog& log,
                     int train_length, std::function<double()> wall);
  double last_loss() const { return last_loss_; }
  double best_loss() const { return best_loss_; }

  void on_start(std::int64_t step) override;
  void after_step(const StepRecord& r) override;
  void save(StateDict& state) const override;
  void load(const StateDict& state) override;

 private:
  const config::TrialConfig& cfg_;
  Evaluator& evaluator_;
  MetricsRecorder* metrics_;
  TrialLog& log_;
  int train_length_;
  std::function<double()> wall_;
  double best_loss_ = std::numeric_limits<double>::infinity();
  double last_loss_ = std::numeric_limits<double>::infinity();
};

// Rank 0: the progress line and the sweep's per-step report (TrainerOptions::on_step).
class ProgressReporter final : public TrainingObserver {
 public:
  ProgressReporter(Progress& progress, std::function<void(const StepProgress&)> on_step, std::int64_t total_steps,
                   std::int64_t tokens_per_step);
  void after_step(const StepRecord& r) override;
  void on_end(const io::TrialSummary& summary) override;

 private:
  Progress& progress_;
  std::function<void(const StepProgress&)> on_step_;
  std::int64_t total_, tokens_per_step_;
};

// Rank 0, train.record_grad_trace: every step's clipped gradient and learning rate from the
// initial parameters on (docs/trace-format.md). A resumed attempt cannot extend a trace: it logs
// that none is recorded (docs/decisions.md 38).
class GradTraceRecorder final : public TrainingObserver {
 public:
  GradTraceRecorder(std::filesystem::path path, const nn::ParameterStore<float>& store, TrialLog& log);
  void on_start(std::int64_t step) override;
  void before_update(std::int64_t step, double lr) override;
  void on_end(const io::TrialSummary& summary) override;

 private:
  std::filesystem::path path_;
  const nn::ParameterStore<float>& store_;
  TrialLog& log_;
  std::unique_ptr<GradTraceWriter> writer_;
};

// train.diagnostics_every > 0: per-matrix optimizer diagnostics every that many steps, recorded on
// rank 0, checkpointed, and written to diagnostics.h5 at the end (docs/results-format.md).
class DiagnosticsObserver final : public TrainingObserver {
 public:
  DiagnosticsObserver(const nn::ParameterStore<float>& store, std::int64_t every, bool leader,
                      std::filesystem::path file);
  void after_step(const StepRecord& r) override;
  void on_end(const io::TrialSummary& summary) override;
  void save(StateDict& state) const override;
  void load(const StateDict& state) override;

 private:
  const nn::ParameterStore<float>& store_;
  std::int64_t every_;
  bool leader_;
  std::filesystem::path file_;
  DiagnosticsRecorder recorder_;
};

}  // namespace expt::experiments
