// The trainer side of train.diagnostics_every: every K steps, optimizers/diagnostics.hpp's fields
// for every 2-D parameter, kept across checkpoints and written to <trial>/diagnostics.h5
// (docs/results-format.md "Optimizer diagnostics"):
//   /step      int64 [rows]           the steps that were measured
//   /names     string [P]             the 2-D parameters, in model order
//   /<field>   float64 [rows, P]      one dataset per field (update_rms, update_spectral, ...)
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/nn/parameter_store.hpp"
#include "core/util/state_dict.hpp"
#include "optimizers/diagnostics.hpp"

namespace expt::experiments {

class DiagnosticsRecorder {
 public:
  explicit DiagnosticsRecorder(const nn::ParameterStore<float>& store);

  // One row: `before` holds every parameter before the step (flat, store order), the store the
  // values after it and the gradients the optimizer received.
  void record(std::int64_t step, const nn::ParameterStore<float>& store, const std::vector<float>& before);
  std::size_t rows() const { return steps_.size(); }

  // Checkpoint entries "diagnostics/step" and "diagnostics/values" (rows x P x fields).
  void save(StateDict& state) const;
  void load(const StateDict& state);  // no entries: no rows yet
  // Writes the file through path.tmp and a rename.
  void write(const std::filesystem::path& path) const;

 private:
  std::vector<std::size_t> matrices_;  // store indices of the 2-D parameters
  std::vector<std::string> names_;
  std::vector<std::int64_t> steps_;
  std::vector<double> values_;  // rows x P x kDiagnosticFields
  std::vector<double> work_;
};

}  // namespace expt::experiments
