#include "core/io/sweep_index.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <type_traits>
#include <variant>

namespace expt::io {

namespace {

// Field order and string sizes of the row; offsets come from H5Tinsert's packing (make_compound).
// (trial_id and status share the 16-byte type, optimizer and model_tag the 32-byte one.)
constexpr std::size_t kIdSize = 16, kOptimizerSize = 32, kCellSize = 64, kModelSize = 32, kStatusSize = 16;
enum Field : std::size_t { kId, kOptimizer, kSeed, kCell, kModel, kRatio, kStatus, kLoss, kSteps, kTokens, kAttempts };

struct RowType {
  h5::Datatype s16 = h5::string_type(kIdSize), s32 = h5::string_type(kOptimizerSize), s64 = h5::string_type(kCellSize);
  std::vector<std::size_t> offsets;
  h5::Datatype row;
  std::size_t size = 0;
  RowType() {
    const h5::CompoundField fields[] = {
        {"trial_id", s16.id()},
        {"optimizer", s32.id()},
        {"seed", H5T_NATIVE_INT64},
        {"cell", s64.id()},
        {"model_tag", s32.id()},
        {"data_ratio", H5T_NATIVE_DOUBLE},
        {"status", s16.id()},
        {"final_eval_loss", H5T_NATIVE_DOUBLE},
        {"steps", H5T_NATIVE_INT64},
        {"tokens", H5T_NATIVE_INT64},
        {"n_attempts", H5T_NATIVE_INT32},
    };
    row = h5::make_compound(fields, &offsets);
    size = H5Tget_size(row.id());
  }
};

std::string fixed_string(const unsigned char* p, std::size_t size) {
  const char* c = reinterpret_cast<const char*>(p);
  return std::string(c, strnlen(c, size));
}

// One axis as a column: the value of every row (a filler where the row's cell does not search it)
// and whether the row has it.
template <class T>
void write_axis_column(const h5::Group& group, const std::vector<SweepIndexRow>& rows, const std::string& key,
                       T filler) {
  std::vector<T> values(rows.size(), filler);
  std::vector<std::uint8_t> present(rows.size(), 0);
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (const auto& [k, v] : rows[i].axes) {
      if (k != key) continue;
      if (!std::holds_alternative<T>(v))
        throw std::logic_error("sweep index: axis " + key + " has values of different types");
      values[i] = std::get<T>(v);
      present[i] = 1;
    }
  if constexpr (std::is_same_v<T, std::string>)
    h5::write_string_array(group, "value", values);
  else
    h5::write_array<T>(group, "value", values, {values.size()});
  h5::write_array<std::uint8_t>(group, "present", present, {present.size()});
}

}  // namespace

void write_sweep_index(const h5::H5Handle& parent, const std::vector<SweepIndexRow>& rows) {
  const RowType type;
  std::vector<unsigned char> buf(type.size * rows.size(), 0);
  std::vector<std::string> labels;
  std::vector<std::string> keys;            // every axis, in the order rows first name them
  std::map<std::string, std::size_t> kind;  // axis -> variant index of its values
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
    put_str(kStatus, r.status, kStatusSize);
    put(kLoss, r.final_eval_loss);
    put(kSteps, r.steps);
    put(kTokens, r.tokens);
    put(kAttempts, r.n_attempts);
    labels.push_back(r.point);
    for (const auto& [key, value] : r.axes)
      if (kind.emplace(key, value.index()).second) keys.push_back(key);
  }
  h5::Dataset ds = h5::create_row_dataset(parent, "trials", type.row.id(), {}, 64);
  if (!rows.empty()) h5::append_rows(ds, type.row.id(), buf.data(), rows.size());
  h5::write_string_array(parent, "point", labels);
  h5::write_string_array(parent, "axis_keys", keys);
  h5::Group axes = h5::create_group(parent, "axes");
  for (const std::string& key : keys) {
    h5::Group column = h5::create_group(axes, key);
    switch (kind.at(key)) {
      case 0:
        write_axis_column<double>(column, rows, key, std::numeric_limits<double>::quiet_NaN());
        break;
      case 1:
        write_axis_column<std::int64_t>(column, rows, key, 0);
        break;
      default:
        write_axis_column<std::string>(column, rows, key, "");
    }
  }
}

std::vector<SweepIndexRow> read_sweep_index(const h5::H5Handle& parent, const std::string& where) {
  if (!h5::link_exists(parent, "axes"))
    throw std::runtime_error(where +
                             " was written by an older expt (each point one 256-byte text in /trials, no /axes); run "
                             "the sweep's `expt sweep` command again to rewrite it (finished trials are kept)");
  const RowType type;
  const h5::Dataset ds = h5::open_dataset(parent, "trials");
  const auto dims = h5::dataset_dims(ds);
  if (dims.size() != 1) throw std::runtime_error(where + ":/trials is not a 1-D table");
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
    r.status = fixed_string(p + type.offsets[kStatus], kStatusSize);
    get(kLoss, r.final_eval_loss);
    get(kSteps, r.steps);
    get(kTokens, r.tokens);
    get(kAttempts, r.n_attempts);
  }
  const auto check_length = [&](std::size_t n, const std::string& name) {
    if (n != rows.size())
      throw std::runtime_error(where + ":/" + name + " has " + std::to_string(n) + " entries for " +
                               std::to_string(rows.size()) + " trials");
  };
  const std::vector<std::string> labels = h5::read_string_array(h5::open_dataset(parent, "point"));
  check_length(labels.size(), "point");
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i].point = labels[i];
  const h5::Group axes = h5::open_group(parent, "axes");
  for (const std::string& key : h5::read_string_array(h5::open_dataset(parent, "axis_keys"))) {
    const h5::Group column = h5::open_group(axes, key);
    const h5::Dataset value = h5::open_dataset(column, "value");
    const auto present = h5::read_array<std::uint8_t>(h5::open_dataset(column, "present"), nullptr);
    check_length(present.size(), "axes/" + key + "/present");
    std::vector<AxisValue> values;
    const H5T_class_t cls = h5::element_info(value).type_class;
    if (cls == H5T_FLOAT) {
      for (double v : h5::read_array<double>(value, nullptr)) values.emplace_back(v);
    } else if (cls == H5T_INTEGER) {
      for (std::int64_t v : h5::read_array<std::int64_t>(value, nullptr)) values.emplace_back(v);
    } else {
      for (std::string& v : h5::read_string_array(value)) values.emplace_back(std::move(v));
    }
    check_length(values.size(), "axes/" + key + "/value");
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (present[i] != 0) rows[i].axes.emplace_back(key, std::move(values[i]));
  }
  return rows;
}

}  // namespace expt::io
