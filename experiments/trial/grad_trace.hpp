// Gradient traces (docs/trace-format.md): what a real run fed its optimizer, so that another
// optimizer (or the same one) can be replayed on exactly those gradients.
//
//   /params/<name>  float32, the initial value (2-D: out x in); attributes `role` (string:
//                   matrix | embedding | head | vector) and, optional, `index` (int64, the
//                   parameter's place in the model's order)
//   /grads/<name>   float32 [steps, ...shape]: the gradient the optimizer got at each step
//                   (after the all-reduce over ranks and after clipping)
//   /lr             float64 [steps]: the scheduled learning rate of each step
//
// GradTraceWriter records a run (the trainer, train.record_grad_trace); read_grad_trace checks a
// trace and replay_grad_trace applies an optimizer config to it, writing the trajectory
//   /params/<name>  float32 [steps + 1, ...shape]   (row 0: the initial value), attribute `role`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"

namespace expt::experiments {

class GradTraceWriter {
 public:
  // Creates `path`.tmp and writes /params from the store's current values; renamed to `path` by
  // finish(). A writer destroyed without finish() leaves only the .tmp file.
  GradTraceWriter(const std::filesystem::path& path, const nn::ParameterStore<float>& store);
  ~GradTraceWriter();
  GradTraceWriter(const GradTraceWriter&) = delete;
  GradTraceWriter& operator=(const GradTraceWriter&) = delete;

  // Appends one step: every parameter's gradient in the store and the learning rate.
  void append(const nn::ParameterStore<float>& store, double lr);
  // Closes the file and renames it into place. Returns the number of steps recorded.
  std::int64_t finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A trace's parameters (in `index` order when every parameter has one, else in name order) and
// its step count. Throws std::runtime_error naming the file and the object for a file that is not
// HDF5, a missing group or dataset, a /grads name without a /params entry (or the reverse), a
// wrong dtype, a shape that does not match, an unknown role, or a non-finite value anywhere.
struct GradTraceInfo {
  std::vector<nn::ParamInfo> params;
  std::int64_t steps = 0;
};
GradTraceInfo read_grad_trace_info(const std::filesystem::path& trace);

// Replays `trace` with the optimizer of `optimizer` (its lr and schedule are ignored: each step
// uses the trace's /lr) and writes the trajectory to `out` (through `out`.tmp and a rename).
// Returns the number of steps.
std::int64_t replay_grad_trace(const config::OptimizerConfig& optimizer, const std::filesystem::path& trace,
                               const std::filesystem::path& out);

}  // namespace expt::experiments
