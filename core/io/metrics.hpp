// Per-segment metrics files: trials/<id>/metrics/seg-<attempt>-<first_step>.h5
//
// A trainer writes its metrics into one segment per attempt per checkpoint interval (the segment is
// closed before each checkpoint's COMMIT and a new one opened after it), so a crash can damage only
// the segment being written, whose steps are recomputed after resume. Layout and types are in
// docs/results-format.md; result.h5 (results.hpp) holds the same datasets, consolidated.
//
// Rows are buffered in memory and appended on flush() (H5Dset_extent + hyperslab write, then
// H5Fflush(GLOBAL), which also writes the metadata). The buffer is flushed by itself when it holds
// one chunk of train rows (4096), which bounds its memory. Not SWMR: one writer, no live readers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace expt::io {

inline constexpr std::int64_t kSchemaVersion = 1;

struct TrainRow {
  std::int64_t step, tokens;
  double wall_s;
  float loss, lr, grad_norm, update_norm, param_norm;
  std::uint8_t skipped, nonfinite;
};

// The eval columns of a trial, fixed for its life.
struct EvalSchema {
  // f4 fields after step/tokens/wall_s, e.g. "loss@32", "token_acc@32", "seq_acc@32". Unique,
  // non-empty, none named step/tokens/wall_s.
  std::vector<std::string> fields;
  // For each, a 2-D dataset /metrics/eval_prefix_acc/L<len> [n_evals, len] f4. Unique, positive.
  std::vector<int> prefix_lengths;
  bool operator==(const EvalSchema&) const = default;
};

struct EvalRow {
  std::int64_t step, tokens;
  double wall_s;
  std::vector<float> values;                   // values.size() == fields.size()
  std::vector<std::vector<float>> prefix_acc;  // one vector of size len per prefix length
};

// kind is at most 16 bytes and detail at most 128 bytes on disk; longer text is truncated (at a
// UTF-8 character boundary).
struct EventRow {
  std::int64_t step;
  double wall_s;
  std::string kind;
  std::string detail;
};

class MetricsSegmentWriter {
 public:
  // Creates `file` (which must not exist yet: a segment is never overwritten) and its parent
  // directory, with every dataset and the root attributes schema_version, attempt, first_step.
  // Throws std::invalid_argument for a malformed schema, std::runtime_error for I/O errors.
  MetricsSegmentWriter(const std::filesystem::path& file, const EvalSchema& schema, int attempt,
                       std::int64_t first_step);
  MetricsSegmentWriter(const MetricsSegmentWriter&) = delete;
  MetricsSegmentWriter& operator=(const MetricsSegmentWriter&) = delete;
  ~MetricsSegmentWriter();  // close(); a failure is reported on stderr, never thrown

  // Train and eval steps must be >= first_step and strictly increasing within the segment (each
  // step is logged once); std::invalid_argument otherwise, or when an eval row does not match the
  // schema. Events may share steps and must only be >= 0.
  void append_train(const TrainRow& row);
  void append_eval(const EvalRow& row);
  void append_event(const EventRow& row);
  void flush();  // buffered rows to disk + H5Fflush(GLOBAL)
  void close();  // flush and close; further appends throw std::logic_error. Idempotent.

  const std::filesystem::path& path() const { return path_; }

 private:
  void write_buffered_rows();
  struct Impl;
  std::filesystem::path path_;
  std::unique_ptr<Impl> impl_;
};

// Readers for a segment or a result.h5 (same datasets). read_eval_rows fills schema_out (when not
// null) from the file: eval fields from the compound type, prefix lengths from
// /metrics/eval_prefix_acc.
std::vector<TrainRow> read_train_rows(const std::filesystem::path& h5file);
std::vector<EvalRow> read_eval_rows(const std::filesystem::path& h5file, EvalSchema* schema_out);
std::vector<EventRow> read_event_rows(const std::filesystem::path& h5file);

}  // namespace expt::io
