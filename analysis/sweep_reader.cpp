#include "analysis/sweep_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

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

std::vector<TrialRow> read_trial_table(const h5::File& file, const fs::path& path) {
  std::vector<TrialRow> rows;
  for (io::SweepIndexRow& in : io::read_sweep_index(file, "trials", path.string() + ":/trials")) {
    TrialRow r;
    r.id = std::move(in.trial_id);
    r.optimizer = std::move(in.optimizer);
    r.seed = in.seed;
    r.cell = std::move(in.cell);
    r.model_tag = std::move(in.model_tag);
    r.data_ratio = in.data_ratio;
    r.point = std::move(in.point);
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
