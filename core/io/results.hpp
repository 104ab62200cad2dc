// Consolidation of a trial's metrics segments into trials/<id>/result.h5, and reading it back.
//
// Consolidation rule (docs/results-format.md): segments are ordered by (attempt, first_step) as
// their file names say; a segment's train/eval/event rows are kept only when their step is below
// the first_step of EVERY later segment in that order (the minimum over the later ones, not just
// the next one), including later segments that will not open. A later attempt restarts from its
// first_step, so everything an earlier segment logged at or after it belongs to a superseded run.
// With train/eval steps >= first_step and strictly increasing inside each segment (the writer
// enforces it), the result holds each step exactly once, in increasing order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/io/metrics.hpp"

namespace expt::io {

struct TrialSummary {
  std::string status;  // "COMPLETED" | "DIVERGED" | "FAILED" | "RUNNING"
  // +inf when diverged / none
  double final_eval_loss = std::numeric_limits<double>::infinity();
  double best_eval_loss = std::numeric_limits<double>::infinity();
  std::int64_t diverged_step = -1, tokens_seen = 0, steps_done = 0;
  double wall_s = 0;
  int n_attempts = 0;
  // write_result stores the number of consolidated train rows with skipped != 0 (the rows are the
  // record; a counter kept by the trainer would not survive a resume); read_summary returns it.
  std::int64_t n_skipped_steps = 0;
  std::string message;  // stored truncated to 4096 bytes
};

using AttributeValue = std::variant<double, std::int64_t, std::string>;

struct ResultInfo {
  std::string trial_id, config_hash, config_yaml;               // resolved canonical YAML
  std::vector<std::pair<std::string, AttributeValue>> hparams;  // /hparams attrs (unique keys)
  std::vector<std::pair<std::string, AttributeValue>> scale;    // /scale attrs (unique keys)
  // CPU and GEMM backend of the attempt that consolidated (kernels::gemm_machine_summary): a
  // trial's bits depend on the backend (kernels/gemm.hpp), so the result names it.
  std::string machine;
};

struct ConsolidationReport {
  std::vector<std::filesystem::path> used, skipped_unreadable;
};

// The rows the consolidation rule keeps, read from <trial_dir>/metrics/seg-*.h5 without writing
// anything: what write_result stores, and what a reader shows of a trial that is still running.
struct ConsolidatedSegments {
  std::vector<TrainRow> train;
  std::vector<EvalRow> eval;
  std::vector<EventRow> events;
  EvalSchema schema;
  ConsolidationReport report;
  std::filesystem::path left_out;  // the newest segment, when leave_out_newest took it out
};

// `leave_out_newest`: do not open the newest segment by (attempt, first_step), the only one a
// running trainer may hold open (it opens the next segment only after closing the previous one);
// its first_step still cuts the earlier segments. Unreadable segments are skipped and reported;
// throws std::runtime_error when segments disagree on the eval schema.
ConsolidatedSegments read_consolidated_segments(const std::filesystem::path& trial_dir, bool leave_out_newest);

// Reads <trial_dir>/metrics/seg-*.h5, applies the consolidation rule, skips segments that will
// not open or are inconsistent (name vs attributes, malformed name) and reports them, and writes
// <trial_dir>/result.h5 through result.h5.tmp + fsync + rename + directory fsync. Throws
// std::invalid_argument for an unknown status or duplicate attribute keys, std::runtime_error when
// segments disagree on the eval schema or on I/O errors (the previous result.h5 is then untouched).
ConsolidationReport write_result(const std::filesystem::path& trial_dir, const ResultInfo& info,
                                 const TrialSummary& summary);

// /summary of a result.h5.
TrialSummary read_summary(const std::filesystem::path& result_h5);

// The build's commit (`git rev-parse --short=12 HEAD` when CMake configured it): result.h5's
// git_sha, also written into sweep.h5 and `expt analyze`'s outputs.
std::string_view build_git_sha();

// Quarantine (docs/reliability.md): damaged files are moved, never deleted, to
// <trial_dir>/quarantine/<file name>-<YYYYMMDDTHHMMSSZ>[-k], and the directories are fsynced.
// Returns the new path.
std::filesystem::path move_to_quarantine(const std::filesystem::path& file, const std::filesystem::path& trial_dir);

// Moves every metrics segment that will not read back whole (will not open, missing datasets,
// attributes that contradict its name, steps out of order) to the quarantine and leaves
// "metrics/<name>.quarantined" in its place: write_result still counts that segment's first_step
// in the consolidation rule (its name proves an attempt restarted there) but reads no rows from
// it. Returns the quarantined segments' new paths.
std::vector<std::filesystem::path> quarantine_unreadable_segments(const std::filesystem::path& trial_dir);

// Attributes of a group (/hparams or /scale) of a result.h5, in name order.
std::vector<std::pair<std::string, AttributeValue>> read_attribute_group(const std::filesystem::path& result_h5,
                                                                         const std::string& group);

}  // namespace expt::io
