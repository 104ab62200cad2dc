// YAML loaded with positions, for config files (trial configs now, study files later).
//
// yaml-cpp 0.7's Node API keeps the last of two equal keys silently and loses where scalars were
// quoted, so documents are read through its event parser (YAML::Parser + YAML::EventHandler) into
// this small tree instead: every node and key carries its 1-based position, duplicate keys are
// reported, and quoted scalars are told apart from plain ones ("3e-4" is a string, 3e-4 a number).
// Nothing downstream of core/config sees YAML.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/config_error.hpp"

namespace expt::config {

struct YamlEntry;

struct YamlNode {
  enum class Kind { null, scalar, sequence, mapping };
  Kind kind = Kind::null;
  Position pos;      // of the value; a null map value (`key:` with nothing after) takes its key's position
  std::string text;  // scalar: the text after unquoting and unescaping
  // scalar: written without quotes and without a tag that forces a string (`!!str`), so it resolves
  // to null/bool/int/float/string by the YAML 1.2 core schema; false means "always a string".
  bool plain = false;
  std::vector<YamlNode> items;     // sequence
  std::vector<YamlEntry> entries;  // mapping, in file order; keys are unique

  const YamlNode* find(std::string_view key) const;
  YamlNode* find(std::string_view key);
};

struct YamlEntry {
  std::string key;
  Position key_pos;
  YamlNode value;
};

// Parses `text` as at most one YAML document. Returns the root (a null node for an empty or
// comment-only text), or nullopt after a syntax error. Reported into `errors` with their
// positions: the syntax error, duplicate keys (at the second occurrence; the first one is kept),
// keys that are not scalars, and a second document.
std::optional<YamlNode> load_yaml_document(const std::string& text, const std::string& source, int source_index,
                                           ErrorList& errors);

// A command-line override `key.path=value`: the value is parsed as one YAML (flow or scalar) value.
struct Override {
  std::vector<std::string> path;  // `a.b.c` -> {a, b, c}
  YamlNode value;                 // every position is `--set:1:<col>` of the value in the override
};

// Parses the index-th override (1-based; it orders errors after the file's). Errors point at
// `--set:1:<col>`, col being where the value starts (1 for a malformed `key.path=value`).
std::optional<Override> parse_override(const std::string& text, int index, ErrorList& errors);

// Applies an override to a document root (a mapping, or null which becomes one): mappings are
// merged key by key, anything else replaces what was there, missing mappings are created.
void apply_override(YamlNode& root, const Override& override_value);

// ---- scalars, resolved by the YAML 1.2 core schema (decimal integers only; yaml-cpp has already
// turned plain null words into null nodes) ----

bool is_integer_text(std::string_view s);            // [-+]?[0-9]+
bool is_float_text(std::string_view s);              // [-+]?(.d+|d+(.d*)?)([eE][-+]?d+)?, [-+]?.inf, .nan
std::optional<bool> bool_value(std::string_view s);  // true/True/TRUE, false/False/FALSE
// nullopt when the text is an integer that does not fit in 64 bits.
std::optional<std::int64_t> integer_value(std::string_view s);
// nullopt when the text is a float whose magnitude is out of the range of a double.
std::optional<double> float_value(std::string_view s);

// What a node is, for messages: `a string ("3e-4")`, `a float (1.5)`, `an integer (3)`,
// `a boolean (true)`, `a list`, `a mapping`, `null`.
std::string describe_node(const YamlNode& node);

}  // namespace expt::config
