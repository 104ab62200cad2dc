#include "experiments/trial/training_observers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace expt::experiments {

// ---- MetricsRecorder ----

MetricsRecorder::MetricsRecorder(const io::TrialDirectory& dir, const io::EvalSchema& schema, int attempt)
    : dir_(dir), schema_(schema), attempt_(attempt) {}

void MetricsRecorder::open(std::int64_t first_step) {
  segment_ = std::make_unique<io::MetricsSegmentWriter>(dir_.segment_path(attempt_, first_step), schema_, attempt_,
                                                        first_step);
}

void MetricsRecorder::append_eval(const io::EvalRow& row) { segment_->append_eval(row); }

void MetricsRecorder::on_start(std::int64_t step) { open(step == 0 ? 0 : step + 1); }

void MetricsRecorder::after_step(const StepRecord& r) {
  const io::TrainRow row{r.step,
                         r.tokens,
                         r.wall_s,
                         static_cast<float>(r.loss),
                         static_cast<float>(r.lr),
                         static_cast<float>(r.grad_norm),
                         static_cast<float>(r.update_norm),
                         static_cast<float>(r.param_norm),
                         0,
                         static_cast<std::uint8_t>(r.finite ? 0 : 1)};
  segment_->append_train(row);
  // Divergence is a status, never a number: the first non-finite step is an event.
  if (!r.finite)
    segment_->append_event(
        io::EventRow{r.step, r.wall_s, "nan", fmt::format("loss {} grad_norm {}", r.loss, r.grad_norm)});
}

void MetricsRecorder::before_checkpoint(std::int64_t step, double wall_s) {
  segment_->append_event(io::EventRow{step, wall_s, "checkpoint", ""});
  segment_->close();
}

void MetricsRecorder::after_checkpoint(std::int64_t step) { open(step + 1); }

void MetricsRecorder::on_interrupt(std::int64_t /*step*/) {
  segment_->close();
  segment_.reset();
}

void MetricsRecorder::on_end(const io::TrialSummary& /*summary*/) {
  if (segment_) segment_->close();
  segment_.reset();
}

// ---- EvaluationRecorder ----

EvaluationRecorder::EvaluationRecorder(const config::TrialConfig& cfg, Evaluator& evaluator, MetricsRecorder* metrics,
                                       TrialLog& log, int train_length, std::function<double()> wall)
    : cfg_(cfg),
      evaluator_(evaluator),
      metrics_(metrics),
      log_(log),
      train_length_(train_length),
      wall_(std::move(wall)) {}

void EvaluationRecorder::on_start(std::int64_t step) {
  if (step != 0) return;
  // The initial model, step 0 (not counted in the last or best eval loss).
  const EvalResult ev = evaluator_.evaluate();
  if (metrics_ != nullptr) metrics_->append_eval(io::EvalRow{0, 0, wall_(), ev.values, ev.prefix_acc});
}

void EvaluationRecorder::after_step(const StepRecord& r) {
  if (!r.finite || (r.step % cfg_.train.eval_every != 0 && r.step != cfg_.train.steps)) return;
  const EvalResult ev = evaluator_.evaluate();
  last_loss_ = ev.train_length_loss;
  if (std::isfinite(last_loss_)) best_loss_ = std::min(best_loss_, last_loss_);
  if (metrics_ != nullptr) metrics_->append_eval(io::EvalRow{r.step, r.tokens, wall_(), ev.values, ev.prefix_acc});
  log_.info(fmt::format("eval step {}: loss {:.4f} token_acc {:.4f} seq_acc {:.4f} (length {})", r.step, ev.values[0],
                        ev.values[1], ev.values[2], train_length_));
}

void EvaluationRecorder::save(StateDict& state) const {
  state.put_scalar("trainer/best_eval_loss", best_loss_);
  state.put_scalar("trainer/last_eval_loss", last_loss_);
}

void EvaluationRecorder::load(const StateDict& state) {
  best_loss_ = state.scalar_double("trainer/best_eval_loss");
  last_loss_ = state.scalar_double("trainer/last_eval_loss");
}

// ---- ProgressReporter ----

ProgressReporter::ProgressReporter(Progress& progress, std::function<void(const StepProgress&)> on_step,
                                   std::int64_t total_steps, std::int64_t tokens_per_step)
    : progress_(progress), on_step_(std::move(on_step)), total_(total_steps), tokens_per_step_(tokens_per_step) {}

void ProgressReporter::after_step(const StepRecord& r) {
  if (!r.finite) return;
  progress_.step(r.step, r.loss, static_cast<double>(tokens_per_step_));
  if (on_step_)
    on_step_(StepProgress{r.step, total_, r.loss,
                          r.seconds > 0 ? static_cast<double>(tokens_per_step_) / r.seconds : 0.0, r.wall_s});
}

void ProgressReporter::on_end(const io::TrialSummary& summary) {
  if (summary.status != "FAILED") progress_.done();
}

// ---- GradTraceRecorder ----

GradTraceRecorder::GradTraceRecorder(std::filesystem::path path, const nn::ParameterStore<float>& store, TrialLog& log)
    : path_(std::move(path)), store_(store), log_(log) {}

void GradTraceRecorder::on_start(std::int64_t step) {
  // A trace holds a whole run from the initial parameters; a resumed attempt cannot extend one.
  if (step == 0)
    writer_ = std::make_unique<GradTraceWriter>(path_, store_);
  else
    log_.info(
        fmt::format("gradient trace {} not recorded: this attempt resumes at step {} (a trace needs one "
                    "uninterrupted run from step 0)",
                    path_.string(), step));
}

void GradTraceRecorder::before_update(std::int64_t /*step*/, double lr) {
  if (writer_) writer_->append(store_, lr);
}

void GradTraceRecorder::on_end(const io::TrialSummary& summary) {
  // A failed attempt leaves only the .tmp file: its trace is not a whole run.
  if (!writer_ || summary.status == "FAILED") return;
  const std::int64_t recorded = writer_->finish();
  log_.info(fmt::format("gradient trace: {} steps written to {}", recorded, path_.string()));
  writer_.reset();
}

// ---- DiagnosticsObserver ----

DiagnosticsObserver::DiagnosticsObserver(const nn::ParameterStore<float>& store, std::int64_t every, bool leader,
                                         std::filesystem::path file)
    : store_(store), every_(every), leader_(leader), file_(std::move(file)), recorder_(store) {}

void DiagnosticsObserver::after_step(const StepRecord& r) {
  if (r.finite && leader_ && r.step % every_ == 0) recorder_.record(r.step, store_, *r.params_before);
}

void DiagnosticsObserver::on_end(const io::TrialSummary& /*summary*/) {
  if (leader_) recorder_.write(file_);
}

void DiagnosticsObserver::save(StateDict& state) const { recorder_.save(state); }

void DiagnosticsObserver::load(const StateDict& state) { recorder_.load(state); }

}  // namespace expt::experiments
