// The /trials table of a sweep's sweep.h5 (docs/results-format.md "sweep.h5"): one packed
// compound row per trial with fixed-size NUL-padded strings. The coordinator writes it
// (experiments/sweep/scheduler.cpp) and `expt analyze` reads it (analysis/sweep_reader.cpp); this is the one
// definition of its layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io/hdf5.hpp"

namespace expt::io {

struct SweepIndexRow {
  std::string trial_id;   // 16 bytes
  std::string optimizer;  // 32
  std::int64_t seed = 0;
  std::string cell;       // 64
  std::string model_tag;  // 32
  double data_ratio = 0;
  std::string point;   // 256
  std::string status;  // 16: PENDING, RUNNING, COMPLETED, DIVERGED, FAILED
  double final_eval_loss = 0;
  std::int64_t steps = 0;   // planned train.steps
  std::int64_t tokens = 0;  // tokens trained (0 until the trial has a summary)
  std::int32_t n_attempts = 0;
};

// Creates dataset `name` under `parent` holding `rows` (longer strings are cut to their field size).
void write_sweep_index(const h5::H5Handle& parent, const std::string& name, const std::vector<SweepIndexRow>& rows);

// Reads the table written by write_sweep_index; `where` names it in errors (e.g. "runs/x/sweep.h5:/trials").
std::vector<SweepIndexRow> read_sweep_index(const h5::H5Handle& parent, const std::string& name,
                                            const std::string& where);

}  // namespace expt::io
