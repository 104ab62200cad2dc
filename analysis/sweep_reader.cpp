#include "analysis/sweep_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <variant>

#include "core/config/canonical.hpp"
#include "core/io/hdf5.hpp"
#include "core/io/results.hpp"
#include "core/io/sweep_index.hpp"

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

bool is_written_as(const io::AxisValue& value, const WrittenValue& written) {
  if (const auto* text = std::get_if<std::string>(&value)) return *text == written.text;
  const double v = std::holds_alternative<double>(value) ? std::get<double>(value)
                                                         : static_cast<double>(std::get<std::int64_t>(value));
  if (written.is_number) return written.number == v;
  return (written.text == "true" && v == 1) || (written.text == "false" && v == 0);
}

std::string written_text(const CellInfo& cell, const std::string& axis, const io::AxisValue& value) {
  for (const auto& [key, values] : cell.axes)
    if (key == axis)
      for (const WrittenValue& w : values)
        if (is_written_as(value, w)) return w.text;
  if (const auto* text = std::get_if<std::string>(&value)) return *text;
  if (const auto* integer = std::get_if<std::int64_t>(&value)) return std::to_string(*integer);
  return config::format_double(std::get<double>(value));
}

namespace {

std::vector<TrialRow> read_trial_table(const h5::File& file, const fs::path& path) {
  std::vector<TrialRow> rows;
  for (io::SweepIndexRow& in : io::read_sweep_index(file, path.string())) {
    TrialRow r;
    r.id = std::move(in.trial_id);
    r.optimizer = std::move(in.optimizer);
    r.seed = in.seed;
    r.cell = std::move(in.cell);
    r.model_tag = std::move(in.model_tag);
    r.data_ratio = in.data_ratio;
    r.point = std::move(in.point);
    r.axes = std::move(in.axes);
    r.state = std::move(in.status);
    r.loss = (r.state == "COMPLETED" && std::isfinite(in.final_eval_loss)) ? in.final_eval_loss
                                                                           : std::numeric_limits<double>::infinity();
    r.steps = in.steps;
    r.tokens = in.tokens;
    r.attempts = in.n_attempts;
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
    data.trials = read_trial_table(file, index);  // first: it names a sweep.h5 of an older expt
    data.study = h5::read_string_attribute(file, "sweep_id");
    data.strategy = h5::read_string_attribute(file, "strategy");
    data.config_schema = h5::read_int_attribute(file, "config_schema");
    data.git_sha = h5::read_string_attribute(file, "git_sha");
    resolved = h5::read_string_dataset(file, "config");
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
      std::vector<WrittenValue> values;
      if (axis.second.IsSequence())  // continuous (Halton) ranges have no discrete values
        for (const auto& v : axis.second) {
          WrittenValue av;
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
