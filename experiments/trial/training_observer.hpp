// The training loop's observers: what watches a trial's training (metrics segments, evaluation,
// progress, gradient traces, optimizer diagnostics) attaches to the loop of
// experiments/trial/trainer.cpp through these life-cycle callbacks instead of living inside it.
// The loop calls the observers in the order they were attached, on the ranks they were attached on
// (an observer that only writes files exists on the trial's rank 0 only; one that runs collectives,
// such as evaluation, on every rank).
#pragma once

#include <cstdint>
#include <vector>

#include "core/io/results.hpp"
#include "core/util/state_dict.hpp"

namespace expt::experiments {

// One finished step.
struct StepRecord {
  std::int64_t step = 0;    // 1-based
  std::int64_t tokens = 0;  // global tokens seen after it
  double wall_s = 0;        // training wall time of the trial after it (earlier attempts included)
  double seconds = 0;       // this step's wall time
  double loss = 0, lr = 0, grad_norm = 0;
  // Finite: the optimizer ran, and the norms below are set. Not finite: the trial DIVERGED at this
  // step (no update) and the loop stops after it.
  bool finite = true;
  double update_norm = 0, param_norm = 0;
  const std::vector<float>* params_before = nullptr;  // every parameter before the update (finite steps)
};

class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  // The attempt starts after `step` steps (0: a fresh trial; else the resumed checkpoint's step).
  virtual void on_start(std::int64_t /*step*/) {}
  // The optimizer is about to run; the store holds this step's clipped gradient.
  virtual void before_update(std::int64_t /*step*/, double /*lr*/) {}
  virtual void after_step(const StepRecord&) {}
  // A checkpoint of `step` is about to be written (rank 0, before the write; periodic or the final
  // one of a completed trial) and a periodic one has been committed (every rank, after it; nothing
  // follows the final one).
  virtual void before_checkpoint(std::int64_t /*step*/, double /*wall_s*/) {}
  virtual void after_checkpoint(std::int64_t /*step*/) {}
  // Stopped by a signal after `step` steps; its checkpoint is written next.
  virtual void on_interrupt(std::int64_t /*step*/) {}
  // The attempt ends with this summary (COMPLETED, DIVERGED or FAILED), before result.h5 is written.
  virtual void on_end(const io::TrialSummary& /*summary*/) {}
  // The resumable state the observer keeps, saved in every checkpoint and loaded on resume.
  virtual void save(StateDict& /*state*/) const {}
  virtual void load(const StateDict& /*state*/) {}
};

}  // namespace expt::experiments
