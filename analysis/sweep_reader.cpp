#include "analysis/sweep_reader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <variant>

#include "core/config/canonical.hpp"
#include "core/io/hdf5.hpp"
#include "core/io/results.hpp"
#include "core/io/sweep_index.hpp"
#include "core/io/trial_directory.hpp"

namespace expt::analysis {

namespace fs = std::filesystem;
namespace h5 = io::h5;

const CellInfo* SweepData::find_cell(const std::string& name) const {
  for (const CellInfo& c : cells)
    if (c.name == name) return &c;
  return nullptr;
}

std::string CellInfo::compare_text() const {
  std::string s;
  for (const auto& [key, value] : compare) s += (s.empty() ? "" : " ") + key + "=" + value;
  return s;
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

// The scalar at a dotted path of a config document as text; empty when absent.
std::string value_at(const YAML::Node& node, const std::string& dotted) {
  if (!node.IsMap()) return "";
  const std::size_t dot = dotted.find('.');
  const YAML::Node child = node[dotted.substr(0, dot)];
  if (!child) return "";
  if (dot == std::string::npos) return child.IsScalar() ? child.as<std::string>() : std::string();
  return value_at(child, dotted.substr(dot + 1));
}

// Every scalar leaf under `node`, as dotted paths under `prefix`.
void leaves(const YAML::Node& node, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) leaves(kv.second, prefix + "." + kv.first.as<std::string>(), out);
  } else if (node.IsScalar()) {
    out[prefix] = node.as<std::string>();
  }
}

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

// The step a WSD branch forked from its trunk: from_step of the last "fork" line of its
// attempts.jsonl (one JSON object per line, docs/results-format.md); 0 when it never forked or the
// file is missing. A line that does not parse is skipped, as the rest of the log's readers do.
std::int64_t fork_step_of(const fs::path& attempts) {
  std::ifstream in(attempts);
  std::int64_t step = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"fork\"") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "fork" && j.contains("from_step") &&
        j["from_step"].is_number_integer())
      step = j["from_step"].get<std::int64_t>();
  }
  return step;
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
    for (const auto& c : kv.second["compare"])
      cell.compare.emplace_back(c.first.as<std::string>(), c.second.as<std::string>());
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

  // Label keys: model.mixer.type, the compared keys, and the model keys whose planned values
  // differ between cells.
  std::vector<std::string> keys = {"model.mixer.type"};
  std::map<std::string, std::set<std::string>> model_values;
  for (const auto& kv : doc["cells"]) {
    std::map<std::string, std::string> flat;
    leaves(kv.second["base"]["model"], "model", flat);
    for (const auto& [k, v] : flat) model_values[k].insert(v);
  }
  for (const CellInfo& c : data.cells)
    for (const auto& [key, value] : c.compare)
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  for (const auto& [key, values] : model_values)
    if (values.size() > 1 && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  const YAML::Node& cells_doc = doc["cells"];
  for (CellInfo& c : data.cells) {
    const YAML::Node base = cells_doc[c.name]["base"];
    for (const std::string& key : keys) c.label_keys.emplace_back(key, value_at(base, key));
  }

  for (TrialRow& t : data.trials) {
    if (t.pruned()) {
      // The wall time of the steps it trained, at its last pause (docs/results-format.md).
      const nlohmann::json paused = io::TrialDirectory(dir / "trials" / t.id).last_attempt_event("paused");
      if (paused.is_object() && paused.contains("wall_s") && paused["wall_s"].is_number())
        t.wall_s = paused["wall_s"].get<double>();
      continue;
    }
    if (!t.finished()) continue;
    t.fork_step = fork_step_of(dir / "trials" / t.id / "attempts.jsonl");
    const fs::path result = dir / "trials" / t.id / "result.h5";
    if (!fs::exists(result)) continue;
    try {
      t.wall_s = io::read_summary(result).wall_s;
    } catch (const std::exception&) {
      t.wall_s = 0;  // the loss and state come from sweep.h5; only the budget misses this trial's time
    }
    const CellInfo* cell = data.find_cell(t.cell);
    if (cell == nullptr) continue;
    try {
      const YAML::Node config = YAML::Load(h5::read_string_dataset(h5::open_file(result), "config"));
      for (const auto& [key, planned] : cell->label_keys) {
        const std::string value = value_at(config, key);
        if (!value.empty()) t.ran.emplace_back(key, value);
      }
    } catch (const std::exception&) {
      t.ran.clear();  // what it ran is unknown; the cell's label says what was planned
    }
  }
  return data;
}

}  // namespace expt::analysis
