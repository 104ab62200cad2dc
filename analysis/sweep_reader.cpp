#include "analysis/sweep_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/io/hdf5.hpp"
#include "core/io/results.hpp"

namespace expt::analysis {

namespace fs = std::filesystem;
namespace h5 = io::h5;

const CellInfo* SweepData::find_cell(const std::string& name) const {
  for (const CellInfo& c : cells)
    if (c.name == name) return &c;
  return nullptr;
}

bool parse_number(const std::string& text, double* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return false;
  *out = v;
  return true;
}

bool same_value(const std::string& a, const std::string& b) {
  double x = 0, y = 0;
  if (parse_number(a, &x) && parse_number(b, &y)) return x == y;
  return a == b;
}

std::vector<std::pair<std::string, std::string>> parse_point(const std::string& point) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t i = 0;
  while (i < point.size()) {
    while (i < point.size() && point[i] == ' ') ++i;
    std::size_t j = point.find(' ', i);
    if (j == std::string::npos) j = point.size();
    if (j > i) {
      const std::string item = point.substr(i, j - i);
      const std::size_t eq = item.find('=');
      if (eq == std::string::npos)
        throw std::runtime_error("malformed point '" + point + "' (no '=' in '" + item + "')");
      out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    i = j;
  }
  return out;
}

namespace {

// The packed row of sweep.h5 /trials as the coordinator writes it (experiments/sweep.cpp).
constexpr std::size_t kId = 16, kOptimizer = 32, kCell = 64, kModel = 32, kPoint = 256, kState = 16;

std::string fixed_string(const unsigned char* p, std::size_t size) {
  const char* c = reinterpret_cast<const char*>(p);
  return std::string(c, strnlen(c, size));
}

std::vector<TrialRow> read_trial_table(const h5::File& file, const fs::path& path) {
  const h5::Datatype s16 = h5::string_type(kId), s32 = h5::string_type(kOptimizer), s64 = h5::string_type(kCell),
                     s256 = h5::string_type(kPoint);
  const h5::CompoundField fields[] = {
      {"trial_id", s16.id()},      {"optimizer", s32.id()},      {"seed", H5T_NATIVE_INT64},
      {"cell", s64.id()},          {"model_tag", s32.id()},      {"data_ratio", H5T_NATIVE_DOUBLE},
      {"point", s256.id()},        {"status", s16.id()},         {"final_eval_loss", H5T_NATIVE_DOUBLE},
      {"steps", H5T_NATIVE_INT64}, {"tokens", H5T_NATIVE_INT64}, {"n_attempts", H5T_NATIVE_INT32},
  };
  std::vector<std::size_t> off;
  const h5::Datatype row = h5::make_compound(fields, &off);
  const std::size_t row_size = H5Tget_size(row.id());
  const h5::Dataset ds = h5::open_dataset(file, "trials");
  const auto dims = h5::dataset_dims(ds);
  if (dims.size() != 1) throw std::runtime_error(path.string() + ":/trials is not a 1-D table");
  std::vector<unsigned char> buf(row_size * dims[0]);
  h5::read_rows(ds, row.id(), buf.data(), dims[0]);
  std::vector<TrialRow> rows;
  for (hsize_t i = 0; i < dims[0]; ++i) {
    const unsigned char* p = buf.data() + i * row_size;
    const auto get = [&](std::size_t field, auto& v) { std::memcpy(&v, p + off[field], sizeof(v)); };
    TrialRow r;
    r.id = fixed_string(p + off[0], kId);
    r.optimizer = fixed_string(p + off[1], kOptimizer);
    get(2, r.seed);
    r.cell = fixed_string(p + off[3], kCell);
    r.model_tag = fixed_string(p + off[4], kModel);
    get(5, r.data_ratio);
    r.point = fixed_string(p + off[6], kPoint);
    r.state = fixed_string(p + off[7], kState);
    double loss = 0;
    get(8, loss);
    r.loss = (r.state == "COMPLETED" && std::isfinite(loss)) ? loss : std::numeric_limits<double>::infinity();
    get(9, r.steps);
    get(10, r.tokens);
    std::int32_t attempts = 0;
    get(11, attempts);
    r.attempts = attempts;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace

SweepData load_sweep(const fs::path& dir) {
  const fs::path index = dir / "sweep.h5";
  if (!fs::exists(index))
    throw std::runtime_error(index.string() + " not found: " + dir.string() +
                             " is not a sweep directory (expt sweep writes sweep.h5 when it starts)");
  SweepData data;
  data.dir = dir;
  std::string resolved;
  {
    const h5::File file = h5::open_file(index);
    data.study = h5::read_string_attribute(file, "sweep_id");
    data.strategy = h5::read_string_attribute(file, "strategy");
    resolved = h5::read_string_dataset(file, "config");
    data.trials = read_trial_table(file, index);
  }

  YAML::Node doc;
  try {
    doc = YAML::Load(resolved);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(index.string() + ":/config does not parse as YAML: " + e.what());
  }
  if (doc["search"] && doc["search"]["tolerance"]) data.tolerance = doc["search"]["tolerance"].as<double>();
  if (doc["sweep"] && doc["sweep"]["ranks_per_trial"]) data.ranks_per_trial = doc["sweep"]["ranks_per_trial"].as<int>();
  for (const auto& kv : doc["cells"]) {
    CellInfo cell;
    cell.name = kv.first.as<std::string>();
    for (const auto& axis : kv.second["axes"]) {
      std::vector<AxisValue> values;
      if (axis.second.IsSequence())  // continuous (Halton) ranges have no discrete values
        for (const auto& v : axis.second) {
          AxisValue av;
          av.text = v.as<std::string>();
          av.is_number = parse_number(av.text, &av.number);
          values.push_back(std::move(av));
        }
      cell.axes.emplace_back(axis.first.as<std::string>(), std::move(values));
    }
    const YAML::Node task = kv.second["base"]["task"];
    if (task && task["seq_len"]) cell.seq_len = task["seq_len"].as<int>();
    for (const TrialRow& t : data.trials)
      if (t.cell == cell.name) {
        cell.optimizer = t.optimizer;
        cell.model_tag = t.model_tag;
        cell.data_ratio = t.data_ratio;
        break;
      }
    if (cell.optimizer.empty()) continue;  // a cell with no planned trial yet
    data.cells.push_back(std::move(cell));
  }

  for (TrialRow& t : data.trials) {
    if (!t.finished()) continue;
    const fs::path result = dir / "trials" / t.id / "result.h5";
    if (!fs::exists(result)) continue;
    try {
      t.wall_s = io::read_summary(result).wall_s;
    } catch (const std::exception&) {
      t.wall_s = 0;  // the loss and state come from sweep.h5; only the budget misses this trial's time
    }
  }
  return data;
}

}  // namespace expt::analysis
