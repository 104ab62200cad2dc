// The trial table of a sweep's sweep.h5 (docs/results-format.md "Sweep index"): one packed
// compound row per trial in /trials, the point's label in /point and one typed column per search
// axis under /axes, all aligned with the rows of /trials. The coordinator writes it
// (experiments/sweep/scheduler.cpp) and `expt analyze` reads it (analysis/sweep_reader.cpp); this is the one
// definition of its layout.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/io/hdf5.hpp"

namespace expt::io {

// One axis value as the trial key takes it: a float key's value as float64, an integer (or
// boolean, 0/1) key's as int64, anything else (strings, lists) as its text.
using AxisValue = std::variant<double, std::int64_t, std::string>;

struct SweepIndexRow {
  std::string trial_id;   // 16 bytes
  std::string optimizer;  // 32
  std::int64_t seed = 0;
  std::string cell;       // 64
  std::string model_tag;  // 32
  double data_ratio = 0;
  std::string point;  // label: the axis values as written, "optimizer.lr=1.0e-3 schedule.warmup=10"; any length
  std::vector<std::pair<std::string, AxisValue>> axes;  // the point, axis by axis in study order
  std::string status;                                   // 16: PENDING, RUNNING, COMPLETED, DIVERGED, FAILED
  double final_eval_loss = 0;
  std::int64_t steps = 0;   // planned train.steps
  std::int64_t tokens = 0;  // tokens trained (0 until the trial has a summary)
  std::int32_t n_attempts = 0;
};

// Writes /trials (fixed-size strings longer than their field are cut), /point, /axis_keys and
// /axes under `parent`. Every row's axis values of one key must have the same type.
void write_sweep_index(const h5::H5Handle& parent, const std::vector<SweepIndexRow>& rows);

// Reads what write_sweep_index wrote; `where` names the file in errors (e.g. "runs/x/sweep.h5").
// A sweep.h5 of an older expt (a fixed 256-byte point in /trials, no /axes) is refused with a
// message saying how to rewrite it.
std::vector<SweepIndexRow> read_sweep_index(const h5::H5Handle& parent, const std::string& where);

}  // namespace expt::io
