// Reading a sweep directory for analysis (docs/sweeps.md "Files written", docs/analysis.md).
//
// The coordinator's index sweep.h5 is the authority on which trials exist and which are finished:
// /trials holds one row per planned trial with its cell, seed and state, /point and /axes its
// point (label and typed values), and /config the resolved study (sweep.resolved.yaml: per cell
// its axis values as written, the tolerance, ranks per trial).
// For every finished trial the reader also opens trials/<id>/result.h5 for its summary (wall time).
// A trial is finished when its state is COMPLETED, DIVERGED or FAILED (the coordinator marks a trial
// FAILED only after its last attempt); pending and running trials are counted but not analysed, so
// a sweep that is still running can be read at any time (sweep.h5 is replaced by rename).
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/io/sweep_index.hpp"

namespace expt::analysis {

struct TrialRow {
  std::string id, optimizer, cell, model_tag, state;
  std::string point;  // label: the axis values as written ("optimizer.lr=1.0e-3 ..."), whole
  std::vector<std::pair<std::string, io::AxisValue>> axes;  // the point's typed values (sweep.h5 /axes)
  std::int64_t seed = 0;
  double data_ratio = 0;
  // Final eval loss as the study ranks it: the stored loss for a COMPLETED trial, +inf for a
  // DIVERGED or FAILED one (and for a COMPLETED one whose loss is not finite), so it ranks last.
  double loss = std::numeric_limits<double>::infinity();
  std::int64_t steps = 0;   // planned train.steps
  std::int64_t tokens = 0;  // tokens trained (summary tokens_seen; 0 when unfinished)
  double wall_s = 0;        // summary wall time of the trial (0 when unfinished or unreadable)
  // A WSD branch (docs/sweeps.md "Branches"): the trunk step it started from, read from the
  // "fork" event of its attempts.jsonl; its first fork_step steps (rows, wall time) are the
  // trunk's, trained once for all its branches. 0: trained from step 0.
  std::int64_t fork_step = 0;
  int attempts = 0;
  // What the trial actually ran on its cell's label keys (CellInfo::label_keys), read from the
  // config stored in its result.h5; empty when that is unreadable.
  std::vector<std::pair<std::string, std::string>> ran;
  bool finished() const { return state == "COMPLETED" || state == "DIVERGED" || state == "FAILED"; }
  // search.halving: a PRUNED trial never runs again (its point lost a rung; docs/sweeps.md
  // "Successive halving"). It is not ranked; what it trained (a trunk up to the rung's fork point:
  // `tokens` from sweep.h5, `wall_s` from its last "paused" line) counts in the tuning budget.
  bool pruned() const { return state == "PRUNED"; }
};

// One axis value as written in the resolved study; `number` when it parses as one.
struct WrittenValue {
  std::string text;
  bool is_number = false;
  double number = 0;
};

struct CellInfo {
  std::string name, optimizer, model_tag;
  double data_ratio = 0;
  // Axes in study order, each with its discrete values in order.
  std::vector<std::pair<std::string, std::vector<WrittenValue>>> axes;
  int seq_len = 0;  // task.seq_len of the cell's base config (the eval column loss@<seq_len>)
  // The study's compared values of this cell (`compare:`), as written, in study order.
  std::vector<std::pair<std::string, std::string>> compare;
  // The keys that say what a cell's trials are, the same for every cell: model.mixer.type, the
  // compared keys, and every model key whose value differs between the cells' base configs; with
  // the cell base's value of each (what was planned).
  std::vector<std::pair<std::string, std::string>> label_keys;
  // "model.mixer.type=gla" (the compared values; empty without compare): with the model tag, the
  // group whose baseline fit defines D_eff.
  std::string compare_text() const;
};

struct SweepData {
  std::filesystem::path dir;
  std::string study, strategy;
  std::int64_t config_schema = 0;  // of the trial ids (sweep.h5 root attribute)
  std::string git_sha;             // of the coordinator that last wrote sweep.h5
  double tolerance = 3e-3;
  int ranks_per_trial = 1;
  std::vector<CellInfo> cells;   // in the order of sweep.resolved.yaml
  std::vector<TrialRow> trials;  // in the order of sweep.h5 /trials
  const CellInfo* find_cell(const std::string& name) const;
};

// Reads DIR/sweep.h5 and the result.h5 of every finished trial. Throws std::runtime_error naming
// the file when DIR is not a sweep directory or sweep.h5 cannot be read.
SweepData load_sweep(const std::filesystem::path& dir);

// Parses text as a whole number (strtod over the full string); false otherwise.
bool parse_number(const std::string& text, double* out);

// Whether a typed axis value is one the study wrote: numbers (booleans as 0/1) compare as
// doubles, strings as text.
bool is_written_as(const io::AxisValue& value, const WrittenValue& written);

// The text of a cell's axis value as the study wrote it; a value outside the axis's list (a Halton
// range) as the planner writes it (floats canonical, integers plain).
std::string written_text(const CellInfo& cell, const std::string& axis, const io::AxisValue& value);

}  // namespace expt::analysis
