#include "core/config/yaml_document.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "core/config/text.hpp"

namespace expt::config {

const YamlNode* YamlNode::find(std::string_view key) const {
  for (const YamlEntry& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

YamlNode* YamlNode::find(std::string_view key) {
  for (YamlEntry& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

namespace {

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// Plain scalars and those tagged with a core-schema scalar type resolve by their text; quoted
// scalars ("!" from yaml-cpp), `!!str` and unknown tags are strings whatever they look like.
bool resolves_by_text(const std::string& tag) {
  return tag == "?" || tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
         tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null";
}

// Builds the YamlNode tree from yaml-cpp's events. Containers under construction sit on a stack;
// a finished node is attached to the container on top: appended to a sequence, or in a mapping
// alternately taken as the next key and as that key's value.
class TreeBuilder final : public YAML::EventHandler {
 public:
  // `col_offset` shifts columns on the first line (an override's value sits after `key.path=`);
  // `root_path` is the key path of the document's root (an override's `key.path`).
  TreeBuilder(const std::string& source, int source_index, int col_offset, std::string root_path, ErrorList& errors)
      : source_(source),
        source_index_(source_index),
        col_offset_(col_offset),
        root_path_(std::move(root_path)),
        errors_(errors) {}

  Position at(const YAML::Mark& mark) const {
    return Position{source_, source_index_, mark.line + 1, mark.column + 1 + (mark.line == 0 ? col_offset_ : 0)};
  }

  std::optional<YamlNode>& root() { return root_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode node;
    node.pos = at(mark);
    complete(std::move(node), anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // yaml-cpp has already rejected aliases to undefined anchors.
    YamlNode node = anchors_.at(anchor);
    node.pos = at(mark);
    complete(std::move(node), 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode node;
    node.kind = YamlNode::Kind::scalar;
    node.pos = at(mark);
    node.text = value;
    node.plain = resolves_by_text(tag);
    complete(std::move(node), anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(YamlNode::Kind::sequence, mark, anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(YamlNode::Kind::mapping, mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    YamlNode node;
    YAML::anchor_t anchor = 0;
    std::string path;         // key path of this container, for messages
    bool have_key = false;    // mapping: a key was read, its value comes next
    bool skip_value = false;  // mapping: the pending key was rejected; drop its value
    std::string key;
    Position key_pos;
  };

  // Key path of the node that is about to start.
  std::string child_path() const {
    if (stack_.empty()) return root_path_;
    const Frame& top = stack_.back();
    if (top.node.kind == YamlNode::Kind::sequence) return top.path + "[" + std::to_string(top.node.items.size()) + "]";
    return top.have_key ? join_path(top.path, top.key) : top.path;
  }

  void open(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    Frame frame;
    frame.node.kind = kind;
    frame.node.pos = at(mark);
    frame.anchor = anchor;
    frame.path = child_path();
    stack_.push_back(std::move(frame));
  }

  void close() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    complete(std::move(frame.node), frame.anchor);
  }

  void complete(YamlNode node, YAML::anchor_t anchor) {
    if (anchor != 0) anchors_[anchor] = node;
    if (stack_.empty()) {
      root_ = std::move(node);
      return;
    }
    Frame& top = stack_.back();
    if (top.node.kind == YamlNode::Kind::sequence) {
      top.node.items.push_back(std::move(node));
      return;
    }
    if (!top.have_key) {
      take_key(top, std::move(node));
      return;
    }
    top.have_key = false;
    if (top.skip_value) return;
    if (node.kind == YamlNode::Kind::null) node.pos = top.key_pos;  // `key:` with no value: point at the key
    top.node.entries.push_back(YamlEntry{std::move(top.key), top.key_pos, std::move(node)});
  }

  void take_key(Frame& top, YamlNode key) {
    top.have_key = true;
    top.skip_value = false;
    if (key.kind != YamlNode::Kind::scalar) {
      errors_.add(key.pos, top.path, cat("a mapping key must be a scalar, got ", describe_node(key)));
      top.skip_value = true;
      return;
    }
    for (const YamlEntry& e : top.node.entries) {
      if (e.key != key.text) continue;
      errors_.add(key.pos, join_path(top.path, key.text),
                  cat("duplicate key '", key.text, "' (first given at line ", std::to_string(e.key_pos.line),
                      ", column ", std::to_string(e.key_pos.col), ")"));
      top.skip_value = true;
      return;
    }
    top.key = std::move(key.text);
    top.key_pos = key.pos;
  }

  std::string source_;
  int source_index_;
  int col_offset_;
  std::string root_path_;
  ErrorList& errors_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, YamlNode> anchors_;
  std::optional<YamlNode> root_;
};

// Sees a following document only to report where it starts.
class DocumentProbe final : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> start;
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (!start) start = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::optional<YamlNode> load_document(const std::string& text, const std::string& source, int source_index,
                                      int col_offset, const std::string& root_path, ErrorList& errors) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  TreeBuilder builder(source, source_index, col_offset, root_path, errors);
  try {
    parser.HandleNextDocument(builder);
    DocumentProbe probe;
    if (parser.HandleNextDocument(probe) && probe.start)
      errors.add(builder.at(*probe.start), "", "a config holds one YAML document; a second one starts here");
  } catch (const YAML::Exception& e) {
    errors.add(builder.at(e.mark), "", cat("YAML syntax error: ", e.msg));
    return std::nullopt;
  }
  if (!builder.root()) {
    YamlNode empty;  // no document at all: an empty or comment-only text
    empty.pos = builder.at(YAML::Mark());
    return empty;
  }
  return std::move(builder.root());
}

YamlEntry* find_entry(YamlNode& map, std::string_view key) {
  for (YamlEntry& e : map.entries)
    if (e.key == key) return &e;
  return nullptr;
}

// Overlays `src` on `dst`: mappings merge key by key, anything else replaces.
void merge_into(YamlNode& dst, const YamlNode& src) {
  if (dst.kind != YamlNode::Kind::mapping || src.kind != YamlNode::Kind::mapping) {
    dst = src;
    return;
  }
  for (const YamlEntry& s : src.entries) {
    YamlEntry* d = find_entry(dst, s.key);
    if (d == nullptr) {
      dst.entries.push_back(s);
      continue;
    }
    if (d->value.kind != YamlNode::Kind::mapping || s.value.kind != YamlNode::Kind::mapping) d->key_pos = s.key_pos;
    merge_into(d->value, s.value);
  }
}

std::string shorten(const std::string& s) {
  constexpr std::size_t kMax = 40;
  return s.size() <= kMax ? s : s.substr(0, kMax) + "...";
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string_view strip_sign(std::string_view s) { return !s.empty() && (s[0] == '+' || s[0] == '-') ? s.substr(1) : s; }

}  // namespace

std::optional<YamlNode> load_yaml_document(const std::string& text, const std::string& source, int source_index,
                                           ErrorList& errors) {
  return load_document(text, source, source_index, 0, "", errors);
}

std::optional<Override> parse_override(const std::string& text, int index, ErrorList& errors) {
  const Position whole{"--set", index, 1, 1};
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos) {
    errors.add(whole, "", cat("expected key.path=value, got '", text, "'"));
    return std::nullopt;
  }
  const std::string key = text.substr(0, eq);
  Override result;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = key.find('.', start);
    result.path.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (result.path.back().empty()) {
      errors.add(whole, key, cat("malformed key path '", key, "' (expected names joined by dots)"));
      return std::nullopt;
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // The value starts at 0-based index eq + 1, i.e. 1-based column eq + 2.
  auto value = load_document(text.substr(eq + 1), "--set", index, static_cast<int>(eq + 1), key, errors);
  if (!value) return std::nullopt;
  result.value = std::move(*value);
  return result;
}

void apply_override(YamlNode& root, const Override& override_value) {
  if (root.kind == YamlNode::Kind::null) root.kind = YamlNode::Kind::mapping;
  if (root.kind != YamlNode::Kind::mapping || override_value.path.empty()) return;
  const Position& at = override_value.value.pos;
  YamlNode* node = &root;
  for (std::size_t i = 0; i + 1 < override_value.path.size(); ++i) {
    const std::string& name = override_value.path[i];
    YamlEntry* entry = find_entry(*node, name);
    if (entry == nullptr) {
      node->entries.push_back(YamlEntry{name, at, YamlNode{}});
      entry = &node->entries.back();
    }
    if (entry->value.kind != YamlNode::Kind::mapping) {
      entry->key_pos = at;
      entry->value = YamlNode{};
      entry->value.kind = YamlNode::Kind::mapping;
      entry->value.pos = at;
    }
    node = &entry->value;
  }
  YamlNode leaf;
  leaf.kind = YamlNode::Kind::mapping;
  leaf.pos = at;
  leaf.entries.push_back(YamlEntry{override_value.path.back(), at, override_value.value});
  merge_into(*node, leaf);
}

bool is_integer_text(std::string_view s) { return all_digits(strip_sign(s)); }

bool is_float_text(std::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  std::string_view body = strip_sign(s);
  if (body == ".inf" || body == ".Inf" || body == ".INF") return true;
  const std::size_t e = body.find_first_of("eE");
  const std::string_view mantissa = body.substr(0, e);
  if (e != std::string_view::npos && !all_digits(strip_sign(body.substr(e + 1)))) return false;
  const std::size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return all_digits(mantissa);
  const std::string_view whole = mantissa.substr(0, dot);
  const std::string_view frac = mantissa.substr(dot + 1);
  if (whole.empty()) return all_digits(frac);                      // .5
  return all_digits(whole) && (frac.empty() || all_digits(frac));  // 1. or 1.5
}

std::optional<bool> bool_value(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

std::optional<std::int64_t> integer_value(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> float_value(std::string_view s) {
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  const bool negative = !s.empty() && s[0] == '-';
  const std::string_view body = strip_sign(s);
  if (body == ".inf" || body == ".Inf" || body == ".INF")
    return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string describe_node(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::null:
      return "null";
    case YamlNode::Kind::sequence:
      return "a list";
    case YamlNode::Kind::mapping:
      return "a mapping";
    case YamlNode::Kind::scalar:
      break;
  }
  if (!node.plain) return cat("a string (\"", shorten(node.text), "\")");
  if (bool_value(node.text)) return cat("a boolean (", node.text, ")");
  if (is_integer_text(node.text)) return cat("an integer (", shorten(node.text), ")");
  if (is_float_text(node.text)) return cat("a float (", shorten(node.text), ")");
  return cat("a string (", shorten(node.text), ")");
}

}  // namespace expt::config
