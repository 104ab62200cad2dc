#include "core/io/metrics.hpp"

#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

#include "core/io/metrics_format.hpp"

namespace expt::io {

namespace detail {

namespace {

// Rows are encoded into packed byte buffers whose layout is the compound type built from the same
// field list, so one list defines both the file type and the memory layout.
template <class T>
void put(unsigned char* row, std::size_t offset, T value) {
  std::memcpy(row + offset, &value, sizeof value);
}
template <class T>
T get(const unsigned char* row, std::size_t offset) {
  T value;
  std::memcpy(&value, row + offset, sizeof value);
  return value;
}

struct Layout {
  h5::Datatype type;
  std::vector<std::size_t> offsets;
  std::size_t row_bytes;
};

Layout make_layout(const std::vector<h5::CompoundField>& fields) {
  Layout layout;
  layout.type = h5::make_compound(fields, &layout.offsets);
  layout.row_bytes = H5Tget_size(layout.type.id());
  return layout;
}

// /metrics/train: step i8, tokens i8, wall_s f8, loss f4, lr f4, grad_norm f4, update_norm f4,
// param_norm f4, skipped u1, nonfinite u1 (46 bytes, packed).
Layout train_layout() {
  return make_layout({{"step", H5T_NATIVE_INT64},
                      {"tokens", H5T_NATIVE_INT64},
                      {"wall_s", H5T_NATIVE_DOUBLE},
                      {"loss", H5T_NATIVE_FLOAT},
                      {"lr", H5T_NATIVE_FLOAT},
                      {"grad_norm", H5T_NATIVE_FLOAT},
                      {"update_norm", H5T_NATIVE_FLOAT},
                      {"param_norm", H5T_NATIVE_FLOAT},
                      {"skipped", H5T_NATIVE_UINT8},
                      {"nonfinite", H5T_NATIVE_UINT8}});
}

// /metrics/eval: step i8, tokens i8, wall_s f8, then one f4 per schema field.
Layout eval_layout(const std::vector<std::string>& fields) {
  std::vector<h5::CompoundField> list = {
      {"step", H5T_NATIVE_INT64}, {"tokens", H5T_NATIVE_INT64}, {"wall_s", H5T_NATIVE_DOUBLE}};
  for (const auto& f : fields) list.push_back({f, H5T_NATIVE_FLOAT});
  return make_layout(list);
}

// /events: step i8, wall_s f8, kind fixed str 16, detail fixed str 128.
Layout event_layout() {
  h5::Datatype kind = h5::string_type(kEventKindBytes);
  h5::Datatype detail = h5::string_type(kEventDetailBytes);
  return make_layout(
      {{"step", H5T_NATIVE_INT64}, {"wall_s", H5T_NATIVE_DOUBLE}, {"kind", kind.id()}, {"detail", detail.id()}});
}

const char* const kPrefixGroup = "metrics/eval_prefix_acc";
// Built by append: GCC 12 at -O3 warns falsely (-Wrestrict, PR 105329) on "L" + std::to_string(len).
std::string prefix_name(int len) {
  std::string name = "L";
  name += std::to_string(len);
  return name;
}

// The dataset's compound field names must include `required`.
void require_fields(const h5::Dataset& dataset, const std::vector<std::string>& required) {
  const auto names = h5::compound_field_names(dataset);
  const std::set<std::string> have(names.begin(), names.end());
  for (const auto& r : required)
    if (have.count(r) == 0) throw std::runtime_error(dataset.where() + " has no field '" + r + "'");
}

hsize_t row_count(const h5::Dataset& dataset) {
  const auto dims = h5::dataset_dims(dataset);
  if (dims.empty()) throw std::runtime_error(dataset.where() + " is not a row dataset");
  return dims[0];
}

}  // namespace

void validate_schema(const EvalSchema& schema) {
  std::set<std::string> seen = {"step", "tokens", "wall_s"};
  for (const auto& f : schema.fields) {
    if (f.empty()) throw std::invalid_argument("eval schema: empty field name");
    if (f.find('\0') != std::string::npos) throw std::invalid_argument("eval schema: field name contains NUL");
    if (!seen.insert(f).second)
      throw std::invalid_argument("eval schema: field '" + f + "' is duplicated or reserved (step, tokens, wall_s)");
  }
  std::set<int> lengths;
  for (int len : schema.prefix_lengths) {
    if (len <= 0) throw std::invalid_argument("eval schema: prefix length " + std::to_string(len) + " is not positive");
    if (!lengths.insert(len).second)
      throw std::invalid_argument("eval schema: prefix length " + std::to_string(len) + " is duplicated");
  }
}

void MetricsDatasets::close() {
  for (auto& p : prefix) p.close();
  events.close();
  eval.close();
  train.close();
}

MetricsDatasets create_metrics_datasets(const h5::File& file, const EvalSchema& schema) {
  validate_schema(schema);
  MetricsDatasets sets;
  sets.train = h5::create_row_dataset(file, "metrics/train", train_layout().type.id(), {}, kTrainChunkRows);
  sets.eval = h5::create_row_dataset(file, "metrics/eval", eval_layout(schema.fields).type.id(), {}, kEvalChunkRows);
  if (!schema.prefix_lengths.empty()) {
    h5::Group group = h5::create_group(file, kPrefixGroup);
    const std::vector<std::int64_t> lengths(schema.prefix_lengths.begin(), schema.prefix_lengths.end());
    h5::write_attribute(group, "prefix_lengths", std::span<const std::int64_t>(lengths));
    for (int len : schema.prefix_lengths)
      sets.prefix.push_back(h5::create_row_dataset(group, prefix_name(len), H5T_NATIVE_FLOAT,
                                                   {static_cast<hsize_t>(len)}, kPrefixChunkRows));
    group.close();
  }
  sets.events = h5::create_row_dataset(file, "events", event_layout().type.id(), {}, kEventChunkRows);
  return sets;
}

void append_train_rows(const h5::Dataset& train, std::span<const TrainRow> rows) {
  if (rows.empty()) return;
  const Layout layout = train_layout();
  const auto& o = layout.offsets;
  std::vector<unsigned char> buffer(rows.size() * layout.row_bytes);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    unsigned char* p = buffer.data() + i * layout.row_bytes;
    const TrainRow& r = rows[i];
    put(p, o[0], r.step);
    put(p, o[1], r.tokens);
    put(p, o[2], r.wall_s);
    put(p, o[3], r.loss);
    put(p, o[4], r.lr);
    put(p, o[5], r.grad_norm);
    put(p, o[6], r.update_norm);
    put(p, o[7], r.param_norm);
    put(p, o[8], r.skipped);
    put(p, o[9], r.nonfinite);
  }
  h5::append_rows(train, layout.type.id(), buffer.data(), rows.size());
}

void append_eval_rows(const MetricsDatasets& sets, const EvalSchema& schema, std::span<const EvalRow> rows) {
  if (rows.empty()) return;
  for (std::size_t k = 0; k < schema.prefix_lengths.size(); ++k) {
    const auto len = static_cast<std::size_t>(schema.prefix_lengths[k]);
    std::vector<float> block;  // [rows, len] row-major
    block.reserve(rows.size() * len);
    for (const auto& r : rows) block.insert(block.end(), r.prefix_acc[k].begin(), r.prefix_acc[k].end());
    h5::append_rows(sets.prefix[k], H5T_NATIVE_FLOAT, block.data(), rows.size());
  }
  const Layout layout = eval_layout(schema.fields);
  const auto& o = layout.offsets;
  std::vector<unsigned char> buffer(rows.size() * layout.row_bytes);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    unsigned char* p = buffer.data() + i * layout.row_bytes;
    put(p, o[0], rows[i].step);
    put(p, o[1], rows[i].tokens);
    put(p, o[2], rows[i].wall_s);
    for (std::size_t f = 0; f < schema.fields.size(); ++f) put(p, o[3 + f], rows[i].values[f]);
  }
  h5::append_rows(sets.eval, layout.type.id(), buffer.data(), rows.size());
}

void append_event_rows(const h5::Dataset& events, std::span<const EventRow> rows) {
  if (rows.empty()) return;
  const Layout layout = event_layout();
  const auto& o = layout.offsets;
  std::vector<unsigned char> buffer(rows.size() * layout.row_bytes, 0);  // strings NULL-padded
  for (std::size_t i = 0; i < rows.size(); ++i) {
    unsigned char* p = buffer.data() + i * layout.row_bytes;
    put(p, o[0], rows[i].step);
    put(p, o[1], rows[i].wall_s);
    const std::string kind = truncate_utf8(rows[i].kind, kEventKindBytes);
    const std::string detail = truncate_utf8(rows[i].detail, kEventDetailBytes);
    std::memcpy(p + o[2], kind.data(), kind.size());
    std::memcpy(p + o[3], detail.data(), detail.size());
  }
  h5::append_rows(events, layout.type.id(), buffer.data(), rows.size());
}

std::vector<TrainRow> read_train(const h5::File& file) {
  h5::Dataset dataset = h5::open_dataset(file, "metrics/train");
  require_fields(dataset, {"step", "tokens", "wall_s", "loss", "lr", "grad_norm", "update_norm", "param_norm",
                           "skipped", "nonfinite"});
  const Layout layout = train_layout();
  const auto& o = layout.offsets;
  const hsize_t n = row_count(dataset);
  std::vector<unsigned char> buffer(n * layout.row_bytes);
  h5::read_rows(dataset, layout.type.id(), buffer.data(), n);
  std::vector<TrainRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = buffer.data() + i * layout.row_bytes;
    rows[i] =
        TrainRow{get<std::int64_t>(p, o[0]), get<std::int64_t>(p, o[1]), get<double>(p, o[2]), get<float>(p, o[3]),
                 get<float>(p, o[4]),        get<float>(p, o[5]),        get<float>(p, o[6]),  get<float>(p, o[7]),
                 get<std::uint8_t>(p, o[8]), get<std::uint8_t>(p, o[9])};
  }
  return rows;
}

std::vector<EvalRow> read_eval(const h5::File& file, EvalSchema* schema_out) {
  h5::Dataset dataset = h5::open_dataset(file, "metrics/eval");
  const auto names = h5::compound_field_names(dataset);
  if (names.size() < 3 || names[0] != "step" || names[1] != "tokens" || names[2] != "wall_s")
    throw std::runtime_error(dataset.where() + " does not start with the fields step, tokens, wall_s");
  EvalSchema schema;
  schema.fields.assign(names.begin() + 3, names.end());
  if (h5::link_exists(file, kPrefixGroup)) {
    h5::Group group = h5::open_group(file, kPrefixGroup);
    for (std::int64_t len : h5::read_int_array_attribute(group, "prefix_lengths"))
      schema.prefix_lengths.push_back(static_cast<int>(len));
  }
  validate_schema(schema);

  const Layout layout = eval_layout(schema.fields);
  const auto& o = layout.offsets;
  const hsize_t n = row_count(dataset);
  std::vector<unsigned char> buffer(n * layout.row_bytes);
  h5::read_rows(dataset, layout.type.id(), buffer.data(), n);
  std::vector<EvalRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = buffer.data() + i * layout.row_bytes;
    rows[i].step = get<std::int64_t>(p, o[0]);
    rows[i].tokens = get<std::int64_t>(p, o[1]);
    rows[i].wall_s = get<double>(p, o[2]);
    rows[i].values.resize(schema.fields.size());
    for (std::size_t f = 0; f < schema.fields.size(); ++f) rows[i].values[f] = get<float>(p, o[3 + f]);
    rows[i].prefix_acc.resize(schema.prefix_lengths.size());
  }
  for (std::size_t k = 0; k < schema.prefix_lengths.size(); ++k) {
    const auto len = static_cast<std::size_t>(schema.prefix_lengths[k]);
    h5::Dataset prefix =
        h5::open_dataset(file, std::string(kPrefixGroup) + "/" + prefix_name(schema.prefix_lengths[k]));
    const auto dims = h5::dataset_dims(prefix);
    if (dims.size() != 2 || dims[1] != len || dims[0] < n)
      throw std::runtime_error(prefix.where() + " does not have " + std::to_string(n) + " rows of " +
                               std::to_string(len) + " values");
    std::vector<float> block(n * len);
    h5::read_rows(prefix, H5T_NATIVE_FLOAT, block.data(), n);
    for (std::size_t i = 0; i < n; ++i)
      rows[i].prefix_acc[k].assign(block.begin() + static_cast<std::ptrdiff_t>(i * len),
                                   block.begin() + static_cast<std::ptrdiff_t>((i + 1) * len));
  }
  if (schema_out != nullptr) *schema_out = std::move(schema);
  return rows;
}

std::vector<EventRow> read_events(const h5::File& file) {
  h5::Dataset dataset = h5::open_dataset(file, "events");
  require_fields(dataset, {"step", "wall_s", "kind", "detail"});
  const Layout layout = event_layout();
  const auto& o = layout.offsets;
  const hsize_t n = row_count(dataset);
  std::vector<unsigned char> buffer(n * layout.row_bytes);
  h5::read_rows(dataset, layout.type.id(), buffer.data(), n);
  const auto text = [](const unsigned char* p, std::size_t size) {
    const char* c = reinterpret_cast<const char*>(p);
    return std::string(c, strnlen(c, size));
  };
  std::vector<EventRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = buffer.data() + i * layout.row_bytes;
    rows[i].step = get<std::int64_t>(p, o[0]);
    rows[i].wall_s = get<double>(p, o[1]);
    rows[i].kind = text(p + o[2], kEventKindBytes);
    rows[i].detail = text(p + o[3], kEventDetailBytes);
  }
  return rows;
}

std::string truncate_utf8(const std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t cut = max_bytes;
  // s[cut] is the first byte left out; if it continues a character (10xxxxxx), back off to the
  // start of that character.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

}  // namespace detail

// ---- MetricsSegmentWriter ----

struct MetricsSegmentWriter::Impl {
  EvalSchema schema;
  std::int64_t first_step = 0;
  // The file is declared before its datasets so that the datasets are destroyed (closed) first.
  h5::File file;
  detail::MetricsDatasets sets;
  std::vector<TrainRow> train;
  std::vector<EvalRow> eval;
  std::vector<EventRow> events;
  std::int64_t last_train_step = std::numeric_limits<std::int64_t>::min();
  std::int64_t last_eval_step = std::numeric_limits<std::int64_t>::min();
  bool closed = false;
};

MetricsSegmentWriter::MetricsSegmentWriter(const std::filesystem::path& file, const EvalSchema& schema, int attempt,
                                           std::int64_t first_step)
    : path_(file), impl_(std::make_unique<Impl>()) {
  detail::validate_schema(schema);
  if (attempt < 1) throw std::invalid_argument("metrics segment " + file.string() + ": attempt must be >= 1");
  if (first_step < 0) throw std::invalid_argument("metrics segment " + file.string() + ": first_step must be >= 0");
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
  impl_->schema = schema;
  impl_->first_step = first_step;
  impl_->file = h5::create_file(file, /*exclusive=*/true);
  h5::write_attribute(impl_->file, "schema_version", kSchemaVersion);
  h5::write_attribute(impl_->file, "attempt", static_cast<std::int64_t>(attempt));
  h5::write_attribute(impl_->file, "first_step", first_step);
  impl_->sets = detail::create_metrics_datasets(impl_->file, schema);
  h5::ErrorGuard guard;
  h5::check_status(H5Fflush(impl_->file.id(), H5F_SCOPE_GLOBAL), "flush " + file.string());
}

MetricsSegmentWriter::~MetricsSegmentWriter() {
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: closing metrics segment %s failed: %s\n", path_.c_str(), e.what());
  }
}

void MetricsSegmentWriter::append_train(const TrainRow& row) {
  if (impl_->closed) throw std::logic_error("metrics segment " + path_.string() + " is closed");
  if (row.step < impl_->first_step || row.step <= impl_->last_train_step)
    throw std::invalid_argument("metrics segment " + path_.string() + ": train step " + std::to_string(row.step) +
                                " is below first_step or not after the previous train step");
  impl_->train.push_back(row);
  impl_->last_train_step = row.step;
  if (impl_->train.size() >= detail::kTrainChunkRows) flush();
}

void MetricsSegmentWriter::append_eval(const EvalRow& row) {
  if (impl_->closed) throw std::logic_error("metrics segment " + path_.string() + " is closed");
  const EvalSchema& s = impl_->schema;
  if (row.step < impl_->first_step || row.step <= impl_->last_eval_step)
    throw std::invalid_argument("metrics segment " + path_.string() + ": eval step " + std::to_string(row.step) +
                                " is below first_step or not after the previous eval step");
  if (row.values.size() != s.fields.size())
    throw std::invalid_argument("metrics segment " + path_.string() + ": eval row has " +
                                std::to_string(row.values.size()) + " values, the schema " +
                                std::to_string(s.fields.size()));
  if (row.prefix_acc.size() != s.prefix_lengths.size())
    throw std::invalid_argument("metrics segment " + path_.string() + ": eval row has " +
                                std::to_string(row.prefix_acc.size()) + " prefix-accuracy vectors, the schema " +
                                std::to_string(s.prefix_lengths.size()));
  for (std::size_t k = 0; k < s.prefix_lengths.size(); ++k)
    if (row.prefix_acc[k].size() != static_cast<std::size_t>(s.prefix_lengths[k]))
      throw std::invalid_argument("metrics segment " + path_.string() + ": prefix accuracy for length " +
                                  std::to_string(s.prefix_lengths[k]) + " has " +
                                  std::to_string(row.prefix_acc[k].size()) + " values");
  impl_->eval.push_back(row);
  impl_->last_eval_step = row.step;
}

void MetricsSegmentWriter::append_event(const EventRow& row) {
  if (impl_->closed) throw std::logic_error("metrics segment " + path_.string() + " is closed");
  if (row.step < 0) throw std::invalid_argument("metrics segment " + path_.string() + ": negative event step");
  impl_->events.push_back(row);
}

void MetricsSegmentWriter::flush() {
  if (impl_->closed) throw std::logic_error("metrics segment " + path_.string() + " is closed");
  write_buffered_rows();
}

void MetricsSegmentWriter::write_buffered_rows() {
  // Each buffer is cleared only once its rows are on disk, so a failed flush can be retried
  // without writing any row twice.
  detail::append_train_rows(impl_->sets.train, impl_->train);
  impl_->train.clear();
  detail::append_eval_rows(impl_->sets, impl_->schema, impl_->eval);
  impl_->eval.clear();
  detail::append_event_rows(impl_->sets.events, impl_->events);
  impl_->events.clear();
  h5::ErrorGuard guard;
  h5::check_status(H5Fflush(impl_->file.id(), H5F_SCOPE_GLOBAL), "flush " + path_.string());
}

void MetricsSegmentWriter::close() {
  if (impl_->closed) return;
  // Marked closed first: if writing fails, the error is thrown once and the handles are released
  // by the destructor, which does not try again.
  impl_->closed = true;
  write_buffered_rows();
  impl_->sets.close();
  impl_->file.close();
}

// ---- readers ----

std::vector<TrainRow> read_train_rows(const std::filesystem::path& h5file) {
  h5::File file = h5::open_file(h5file);
  auto rows = detail::read_train(file);
  file.close();
  return rows;
}

std::vector<EvalRow> read_eval_rows(const std::filesystem::path& h5file, EvalSchema* schema_out) {
  h5::File file = h5::open_file(h5file);
  auto rows = detail::read_eval(file, schema_out);
  file.close();
  return rows;
}

std::vector<EventRow> read_event_rows(const std::filesystem::path& h5file) {
  h5::File file = h5::open_file(h5file);
  auto rows = detail::read_events(file);
  file.close();
  return rows;
}

}  // namespace expt::io
