#include "core/io/sweep_index.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace expt::io {

namespace {

// Field order and string sizes of the row; offsets come from H5Tinsert's packing (make_compound).
// (trial_id and status share the 16-byte type, optimizer and model_tag the 32-byte one.)
constexpr std::size_t kIdSize = 16, kOptimizerSize = 32, kCellSize = 64, kModelSize = 32, kPointSize = 256,
                      kStatusSize = 16;
enum Field : std::size_t {
  kId,
  kOptimizer,
  kSeed,
  kCell,
  kModel,
  kRatio,
  kPoint,
  kStatus,
  kLoss,
  kSteps,
  kTokens,
  kAttempts
};

struct RowType {
  h5::Datatype s16 = h5::string_type(kIdSize), s32 = h5::string_type(kOptimizerSize), s64 = h5::string_type(kCellSize),
               s256 = h5::string_type(kPointSize);
  std::vector<std::size_t> offsets;
  h5::Datatype row;
  std::size_t size = 0;
  RowType() {
    const h5::CompoundField fields[] = {
        {"trial_id", s16.id()},      {"optimizer", s32.id()},      {"seed", H5T_NATIVE_INT64},
        {"cell", s64.id()},          {"model_tag", s32.id()},      {"data_ratio", H5T_NATIVE_DOUBLE},
        {"point", s256.id()},        {"status", s16.id()},         {"final_eval_loss", H5T_NATIVE_DOUBLE},
        {"steps", H5T_NATIVE_INT64}, {"tokens", H5T_NATIVE_INT64}, {"n_attempts", H5T_NATIVE_INT32},
    };
    row = h5::make_compound(fields, &offsets);
    size = H5Tget_size(row.id());
  }
};

std::string fixed_string(const unsigned char* p, std::size_t size) {
  const char* c = reinterpret_cast<const char*>(p);
  return std::string(c, strnlen(c, size));
}

}  // namespace

void write_sweep_index(const h5::H5Handle& parent, const std::string& name, const std::vector<SweepIndexRow>& rows) {
  const RowType type;
  std::vector<unsigned char> buf(type.size * rows.size(), 0);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const SweepIndexRow& r = rows[i];
    unsigned char* p = buf.data() + i * type.size;
    const auto put_str = [&](Field f, const std::string& s, std::size_t size) {
      std::memcpy(p + type.offsets[f], s.data(), std::min(size, s.size()));
    };
    const auto put = [&](Field f, const auto& v) { std::memcpy(p + type.offsets[f], &v, sizeof(v)); };
    put_str(kId, r.trial_id, kIdSize);
    put_str(kOptimizer, r.optimizer, kOptimizerSize);
    put(kSeed, r.seed);
    put_str(kCell, r.cell, kCellSize);
    put_str(kModel, r.model_tag, kModelSize);
    put(kRatio, r.data_ratio);
    put_str(kPoint, r.point, kPointSize);
    put_str(kStatus, r.status, kStatusSize);
    put(kLoss, r.final_eval_loss);
    put(kSteps, r.steps);
    put(kTokens, r.tokens);
    put(kAttempts, r.n_attempts);
  }
  h5::Dataset ds = h5::create_row_dataset(parent, name, type.row.id(), {}, 64);
  if (!rows.empty()) h5::append_rows(ds, type.row.id(), buf.data(), rows.size());
}

std::vector<SweepIndexRow> read_sweep_index(const h5::H5Handle& parent, const std::string& name,
                                            const std::string& where) {
  const RowType type;
  const h5::Dataset ds = h5::open_dataset(parent, name);
  const auto dims = h5::dataset_dims(ds);
  if (dims.size() != 1) throw std::runtime_error(where + " is not a 1-D table");
  std::vector<unsigned char> buf(type.size * dims[0]);
  h5::read_rows(ds, type.row.id(), buf.data(), dims[0]);
  std::vector<SweepIndexRow> rows(dims[0]);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const unsigned char* p = buf.data() + i * type.size;
    const auto get = [&](Field f, auto& v) { std::memcpy(&v, p + type.offsets[f], sizeof(v)); };
    SweepIndexRow& r = rows[i];
    r.trial_id = fixed_string(p + type.offsets[kId], kIdSize);
    r.optimizer = fixed_string(p + type.offsets[kOptimizer], kOptimizerSize);
    get(kSeed, r.seed);
    r.cell = fixed_string(p + type.offsets[kCell], kCellSize);
    r.model_tag = fixed_string(p + type.offsets[kModel], kModelSize);
    get(kRatio, r.data_ratio);
    r.point = fixed_string(p + type.offsets[kPoint], kPointSize);
    r.status = fixed_string(p + type.offsets[kStatus], kStatusSize);
    get(kLoss, r.final_eval_loss);
    get(kSteps, r.steps);
    get(kTokens, r.tokens);
    get(kAttempts, r.n_attempts);
  }
  return rows;
}

}  // namespace expt::io
