#include "core/config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/config/canonical.hpp"
#include "core/config/schema.hpp"
#include "core/config/text.hpp"
#include "core/config/trial_schema.hpp"
#include "core/config/yaml_document.hpp"

namespace expt::config {

namespace {

// Writes the keys as block YAML, two spaces per level: those `keep` accepts, each section's header
// only when a key under it is written.
class YamlWriter final : public schema::Sink {
 public:
  explicit YamlWriter(std::function<bool(const std::string& path)> keep) : keep_(std::move(keep)) {}
  void leaf(const std::string& path, int depth, const std::string& name, const std::string& value) override {
    if (!keep_(path)) return;
    drop_headers_from(depth);
    for (const auto& header : pending_) text_ += header.second;
    pending_.clear();
    text_ += indent(depth) + name + ": " + value + "\n";
  }
  void section(const std::string&, int depth, const std::string& name) override {
    drop_headers_from(depth);
    pending_.emplace_back(depth, indent(depth) + name + ":\n");
  }
  const std::string& text() const { return text_; }

 private:
  static std::string indent(int depth) { return std::string(2 * static_cast<std::size_t>(depth), ' '); }
  // Headers at `depth` or deeper belong to sections that ended without a written key.
  void drop_headers_from(int depth) {
    while (!pending_.empty() && pending_.back().first >= depth) pending_.pop_back();
  }
  std::function<bool(const std::string&)> keep_;
  std::vector<std::pair<int, std::string>> pending_;  // (depth, header line) of open sections
  std::string text_;
};

// Every leaf (path, canonical value) except `out`, and the paths of the selectors among them.
class FlatWriter final : public schema::Sink {
 public:
  void leaf(const std::string& path, int, const std::string&, const std::string& value) override {
    if (path != "out") pairs.emplace_back(path, value);
  }
  void section(const std::string&, int, const std::string&) override {}
  void selector(const std::string& path) override { selectors.insert(path); }
  std::vector<std::pair<std::string, std::string>> pairs;
  std::set<std::string> selectors;
};

std::string emit(const TrialConfig& cfg, bool with_out) {
  YamlWriter writer([with_out](const std::string& path) { return with_out || path != "out"; });
  trial_table().write(cfg, "", 0, writer);
  return writer.text();
}

FlatWriter flatten(const TrialConfig& cfg, const schema::Table<TrialConfig>& table) {
  FlatWriter writer;
  table.write(cfg, "", 0, writer);
  return writer;
}

std::map<std::string, std::string> as_map(const std::vector<std::pair<std::string, std::string>>& pairs) {
  return {pairs.begin(), pairs.end()};
}

}  // namespace

TrialConfig parse_trial_config(const std::string& yaml_text, const std::string& filename,
                               const std::vector<std::string>& overrides) {
  ErrorList errors;
  std::optional<YamlNode> root = load_yaml_document(yaml_text, filename, 0, errors);
  std::vector<Override> parsed;
  for (std::size_t i = 0; i < overrides.size(); ++i)
    if (auto ov = parse_override(overrides[i], static_cast<int>(i) + 1, errors)) parsed.push_back(std::move(*ov));

  TrialConfig cfg;
  if (root) {
    if (root->kind != YamlNode::Kind::null && root->kind != YamlNode::Kind::mapping) {
      errors.add(root->pos, "",
                 cat("the top level must be a mapping of keys (seed, task, model, ...), got ", describe_node(*root)));
    } else {
      for (const Override& ov : parsed) apply_override(*root, ov);
      schema::Reader reader(errors);
      trial_table().read(*root, cfg, "", reader);
      check_conflicts(cfg, filename, reader);
    }
  }
  errors.throw_if_any();
  return cfg;
}

TrialConfig load_trial_config(const std::string& path, const std::vector<std::string>& overrides) {
  const auto fail = [&](const std::string& message) { throw ConfigErrors({ConfigError{path, 0, 0, "", message}}); };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail("is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(std::string("cannot open the config file: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(std::string("cannot read the config file: ") + std::strerror(errno));
  return parse_trial_config(text.str(), path, overrides);
}

std::string to_canonical_yaml(const TrialConfig& cfg) { return emit(cfg, true); }

std::string minimal_yaml(const TrialConfig& cfg, const schema::Table<TrialConfig>& table) {
  const FlatWriter flat = flatten(cfg, table);
  // The defaults of cfg's types: the config read from its selectors alone (reading optimizer.type
  // resets the section to that type's defaults, decision 16).
  YamlWriter selectors_only([&](const std::string& path) { return flat.selectors.count(path) > 0; });
  table.write(cfg, "", 0, selectors_only);
  ErrorList errors;
  schema::Reader reader(errors);
  TrialConfig type_defaults;
  if (const auto root = load_yaml_document(selectors_only.text(), "<selectors>", 0, errors))
    table.read(*root, type_defaults, "", reader);
  if (!errors.empty())
    throw std::logic_error("the selectors of a config do not read back: " + errors.sorted()[0].str());
  // Selectors are compared with the plain defaults (no type named), every other key with its type's.
  const auto per_type = as_map(flatten(type_defaults, table).pairs);
  const auto plain = as_map(flatten(TrialConfig{}, table).pairs);
  const auto values = as_map(flat.pairs);
  YamlWriter minimal([&](const std::string& path) {
    if (path == "out") return false;
    const auto& defaults = flat.selectors.count(path) > 0 ? plain : per_type;
    const auto it = defaults.find(path);
    return it == defaults.end() || it->second != values.at(path);
  });
  table.write(cfg, "", 0, minimal);
  return minimal.text();
}

std::string minimal_yaml(const TrialConfig& cfg) { return minimal_yaml(cfg, trial_table()); }

std::string config_hash(const TrialConfig& cfg, const schema::Table<TrialConfig>& table) {
  return fnv1a64_hex("config_schema: " + std::to_string(kConfigSchemaVersion) + "\n" + minimal_yaml(cfg, table));
}

std::string config_hash(const TrialConfig& cfg) { return config_hash(cfg, trial_table()); }

std::vector<std::pair<std::string, TypedValue>> typed_config(const TrialConfig& cfg) {
  std::vector<std::pair<std::string, TypedValue>> out;
  for (auto& [key, text] : flatten_config(cfg)) {
    if (auto b = bool_value(text)) {
      out.emplace_back(key, static_cast<std::int64_t>(*b ? 1 : 0));
    } else if (is_integer_text(text)) {
      out.emplace_back(key, *integer_value(text));
    } else if (is_float_text(text)) {
      out.emplace_back(key, *float_value(text));
    } else if (!text.empty() && text.front() == '"') {
      out.emplace_back(key, YAML::Load(text).as<std::string>());
    } else {
      out.emplace_back(key, text);
    }
  }
  return out;
}

std::string schema_markdown() {
  std::vector<schema::DocRow> rows;
  trial_table().describe("", rows);
  return schema::markdown_table(rows);
}

std::vector<std::pair<std::string, std::string>> flatten_config(const TrialConfig& cfg) {
  return flatten(cfg, trial_table()).pairs;
}

}  // namespace expt::config
