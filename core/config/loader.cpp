#include "core/config/loader.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config/canonical.hpp"
#include "core/config/schema.hpp"
#include "core/config/text.hpp"
#include "core/config/trial_schema.hpp"
#include "core/config/yaml_document.hpp"

#include <yaml-cpp/yaml.h>

namespace expt::config {

namespace {

// Writes the keys as block YAML, two spaces per level.
class YamlWriter final : public schema::Sink {
 public:
  explicit YamlWriter(bool with_out) : with_out_(with_out) {}
  void leaf(const std::string& path, int depth, const std::string& name, const std::string& value) override {
    if (!with_out_ && path == "out") return;
    text_ += std::string(2 * static_cast<std::size_t>(depth), ' ') + name + ": " + value + "\n";
  }
  void section(const std::string&, int depth, const std::string& name) override {
    text_ += std::string(2 * static_cast<std::size_t>(depth), ' ') + name + ":\n";
  }
  const std::string& text() const { return text_; }

 private:
  bool with_out_;
  std::string text_;
};

class FlatWriter final : public schema::Sink {
 public:
  void leaf(const std::string& path, int, const std::string&, const std::string& value) override {
    if (path != "out") pairs.emplace_back(path, value);
  }
  void section(const std::string&, int, const std::string&) override {}
  std::vector<std::pair<std::string, std::string>> pairs;
};

std::string emit(const TrialConfig& cfg, bool with_out) {
  YamlWriter writer(with_out);
  trial_table().write(cfg, "", 0, writer);
  return writer.text();
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

std::string config_hash(const TrialConfig& cfg) { return fnv1a64_hex(emit(cfg, false)); }

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
  FlatWriter writer;
  trial_table().write(cfg, "", 0, writer);
  return std::move(writer.pairs);
}

}  // namespace expt::config
