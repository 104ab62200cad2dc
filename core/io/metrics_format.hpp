// The metrics datasets shared by segment files and result.h5 (internal to core/io): how they are
// created, appended to and read. One definition keeps the two file kinds identical.
#pragma once

#include <span>
#include <vector>

#include "core/io/hdf5.hpp"
#include "core/io/metrics.hpp"

namespace expt::io::detail {

inline constexpr hsize_t kTrainChunkRows = 4096;  // 46 bytes a row: about 190 KB a chunk
inline constexpr hsize_t kEvalChunkRows = 256;
inline constexpr hsize_t kEventChunkRows = 256;
inline constexpr hsize_t kPrefixChunkRows = 64;
inline constexpr std::size_t kEventKindBytes = 16;
inline constexpr std::size_t kEventDetailBytes = 128;

// Throws std::invalid_argument when fields or prefix lengths are empty names, duplicates,
// reserved (step/tokens/wall_s) or non-positive.
void validate_schema(const EvalSchema& schema);

struct MetricsDatasets {
  h5::Dataset train, eval, events;
  std::vector<h5::Dataset> prefix;  // one per schema.prefix_lengths, same order
  void close();                     // closes every dataset, throwing on failure
};

// Creates /metrics/train, /metrics/eval, /metrics/eval_prefix_acc/L<len> (with the group attribute
// prefix_lengths, in schema order) and /events, all empty and extendible.
MetricsDatasets create_metrics_datasets(const h5::File& file, const EvalSchema& schema);

void append_train_rows(const h5::Dataset& train, std::span<const TrainRow> rows);
// Appends the prefix-accuracy rows first and the eval rows last: the eval dataset's length is the
// commit point, so a reader trusts exactly its first n rows of every prefix dataset.
void append_eval_rows(const MetricsDatasets& sets, const EvalSchema& schema, std::span<const EvalRow> rows);
void append_event_rows(const h5::Dataset& events, std::span<const EventRow> rows);

std::vector<TrainRow> read_train(const h5::File& file);
std::vector<EvalRow> read_eval(const h5::File& file, EvalSchema* schema_out);
std::vector<EventRow> read_events(const h5::File& file);

// Cuts s to at most max_bytes bytes without splitting a UTF-8 character.
std::string truncate_utf8(const std::string& s, std::size_t max_bytes);

}  // namespace expt::io::detail
