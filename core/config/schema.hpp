// Declarative config schemas: one table per config struct lists its keys in the order they are
// written out, each with the member it fills, its domain, its documentation and the types (values
// of the struct's selector key, e.g. `optimizer.type`) it applies to. The same table reads YAML
// into the struct (type, domain, unknown and inapplicable keys), writes the canonical YAML and
// produces the documentation rows, so a new key is one line:
//
//   key("beta1", &OptimizerConfig::beta1, real_range(0, 1, Upper::open), "first-moment decay", {"adamw"}),
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/config/config_error.hpp"
#include "core/config/enum_names.hpp"
#include "core/config/text.hpp"
#include "core/config/yaml_document.hpp"

namespace expt::config::schema {

// What one load finds: its errors, where each key's value was given, and which keys failed.
class Reader {
 public:
  explicit Reader(ErrorList& errors) : errors_(errors) {}
  void error(const Position& at, const std::string& key_path, std::string message);
  void given(const std::string& key_path, const Position& at) { positions_[key_path] = at; }
  const Position* where(const std::string& key_path) const;
  bool failed(const std::string& key_path) const { return failed_.count(key_path) > 0; }

 private:
  ErrorList& errors_;
  std::map<std::string, Position> positions_;
  std::set<std::string> failed_;
};

// The values a key accepts: a description for the docs and a check that returns the message for
// a value outside the domain (nullopt when the value is fine).
template <class T>
struct Domain {
  std::string text;
  std::function<std::optional<std::string>(const T&)> check;
};

enum class Upper { open, closed };

Domain<std::int64_t> at_least(std::int64_t lo);                                      // >= lo
Domain<std::int64_t> int_range(std::int64_t lo, std::int64_t hi, std::string text);  // [lo, hi]
Domain<double> above(double lo);                                                     // > lo, finite
Domain<double> real_at_least(double lo);                                             // >= lo, finite
Domain<double> real_range(double lo, double hi, Upper upper);                        // [lo, hi) or [lo, hi]
Domain<bool> any_bool();
Domain<std::string> one_of(std::vector<std::string> values);
Domain<std::string> non_empty();

// Reads one value into a member; reports a type error, a domain error or an integer that does not
// fit the member, and leaves the member unchanged in those cases. Integers accept only integer
// scalars; floats accept integers too; a quoted scalar is always a string.
bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, int& out, Reader& r);
bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, std::int64_t& out,
                Reader& r);
bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, std::uint64_t& out,
                Reader& r);
bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& element_domain,
                std::vector<int>& out, Reader& r);
bool read_value(const YamlNode& node, const std::string& path, const Domain<double>& domain, double& out, Reader& r);
bool read_value(const YamlNode& node, const std::string& path, const Domain<bool>& domain, bool& out, Reader& r);
bool read_value(const YamlNode& node, const std::string& path, const Domain<std::string>& domain, std::string& out,
                Reader& r);

// Canonical YAML text of a value (floats: canonical.hpp's format_double; lists in flow style).
std::string format_value(int v);
std::string format_value(std::int64_t v);
std::string format_value(std::uint64_t v);
std::string format_value(double v);
std::string format_value(bool v);
std::string format_value(const std::string& v);
std::string format_value(const std::vector<int>& v);

template <class T>
constexpr const char* type_name();
template <>
constexpr const char* type_name<int>() {
  return "integer";
}
template <>
constexpr const char* type_name<std::int64_t>() {
  return "integer";
}
template <>
constexpr const char* type_name<std::uint64_t>() {
  return "integer";
}
template <>
constexpr const char* type_name<double>() {
  return "float";
}
template <>
constexpr const char* type_name<bool>() {
  return "bool";
}
template <>
constexpr const char* type_name<std::string>() {
  return "string";
}
template <>
constexpr const char* type_name<std::vector<int>>() {
  return "list of integers";
}

// Receives the keys of a config in schema order (canonical YAML, flattening).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void leaf(const std::string& path, int depth, const std::string& name, const std::string& value) = 0;
  virtual void section(const std::string& path, int depth, const std::string& name) = 0;
  // Called just before the leaf of a section's selector (e.g. `optimizer.type`), whose value picks
  // the section's keys and their defaults; the trial id needs to know them (config_hash).
  virtual void selector(const std::string& /*path*/) {}
};

// One row of the key table in docs/config.md. type_defaults: (type, default) for the types of the
// table's selector whose default differs from default_value.
struct DocRow {
  std::string path, type, default_value, domain, applies_to, meaning;
  std::vector<std::pair<std::string, std::string>> type_defaults = {};
};
std::string markdown_table(const std::vector<DocRow>& rows);

std::string join_path(const std::string& parent, const std::string& key);
// A double as a person writes it in a message (0.001, 1e-08, 1.5): shortest round-trip digits.
std::string show(double v);
// The candidate closest to `word` by edit distance (ignoring letter case, a swap of neighbours
// counting once), if it is close enough to be a likely typo.
std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates);
std::string unknown_key_message(const std::string& key, const std::vector<std::string>& valid_keys);
std::string inapplicable_key_message(const std::string& key, const std::string& selector_path, const std::string& type,
                                     const std::vector<std::string>& applies_to);

template <class S>
struct Key {
  std::string name;
  std::vector<std::string> applies_to;  // values of the table's selector; empty: every value
  // Reads the key's YAML value into s; false (after reporting) when the value is rejected.
  std::function<bool(const YamlNode& node, S& s, const std::string& path, Reader& r)> read;
  // Sends the key (a section: the header, then its keys) to `out`.
  std::function<void(const S& s, const std::string& path, int depth, Sink& out)> write;
  // Appends the documentation rows (a section: those of its keys). type_defaults: the struct's
  // defaults under each type the key applies to (empty when the table has no per-type defaults).
  std::function<void(const std::string& path, const std::string& applies_text,
                     const std::vector<std::pair<std::string, S>>& type_defaults, std::vector<DocRow>& rows)>
      describe;

  bool applies(const std::string& type) const {
    if (applies_to.empty()) return true;
    for (const std::string& t : applies_to)
      if (t == type) return true;
    return false;
  }
};

template <class S>
struct Table {
  std::string selector_name;           // key whose value picks the conditional keys; "" if none
  std::string S::*selector = nullptr;  // the member holding that value
  std::vector<Key<S>> keys;
  // Tables whose types have defaults of their own (typed_table): every type, and its defaults.
  std::vector<std::string> types = {};
  std::function<S(const std::string&)> defaults_of = nullptr;

  const Key<S>* find(std::string_view name) const {
    for (const Key<S>& k : keys)
      if (k.name == name) return &k;
    return nullptr;
  }

  // Reads a mapping (null: an empty section, every default) into s. The selector is read first so
  // that every other key can be checked against the chosen type; an invalid selector skips that
  // check rather than burying the real error under "does not apply" ones.
  void read(const YamlNode& node, S& s, const std::string& path, Reader& r) const {
    if (node.kind == YamlNode::Kind::null) return;
    if (node.kind != YamlNode::Kind::mapping) {
      r.error(node.pos, path, cat("expected a mapping, got ", describe_node(node)));
      return;
    }
    std::optional<std::string> type;
    if (selector != nullptr) {
      const YamlNode* given = node.find(selector_name);
      if (given == nullptr || find(selector_name)->read(*given, s, join_path(path, selector_name), r))
        type = s.*selector;
    }
    for (const YamlEntry& e : node.entries) {
      if (selector != nullptr && e.key == selector_name) continue;
      const std::string key_path = join_path(path, e.key);
      const Key<S>* k = find(e.key);
      if (k == nullptr) {
        r.error(e.key_pos, key_path, unknown_key_message(e.key, key_names(type)));
      } else if (type && !k->applies(*type)) {
        r.error(e.key_pos, key_path,
                inapplicable_key_message(e.key, join_path(path, selector_name), *type, k->applies_to));
      } else {
        k->read(e.value, s, key_path, r);
      }
    }
  }

  // Writes the keys that apply to s's type, in table order.
  void write(const S& s, const std::string& path, int depth, Sink& out) const {
    for (const Key<S>& k : keys) {
      if (selector != nullptr && !k.applies(s.*selector)) continue;
      const std::string key_path = join_path(path, k.name);
      if (selector != nullptr && k.name == selector_name) out.selector(key_path);
      k.write(s, key_path, depth, out);
    }
  }

  void describe(const std::string& path, std::vector<DocRow>& rows) const {
    for (const Key<S>& k : keys) {
      std::string applies = "any";
      if (!k.applies_to.empty()) {
        applies = join_path(path, selector_name) + ":";
        for (std::size_t i = 0; i < k.applies_to.size(); ++i) applies += cat(i ? ", " : " ", k.applies_to[i]);
      }
      std::vector<std::pair<std::string, S>> type_defaults;
      if (defaults_of)
        for (const std::string& type : types)
          if (k.applies(type) && k.name != selector_name) type_defaults.emplace_back(type, defaults_of(type));
      k.describe(join_path(path, k.name), applies, type_defaults, rows);
    }
  }

  // Names of the keys valid for `type` (all keys when the type is unknown), for suggestions.
  std::vector<std::string> key_names(const std::optional<std::string>& type) const {
    std::vector<std::string> names;
    for (const Key<S>& k : keys)
      if (!type || k.applies(*type)) names.push_back(k.name);
    return names;
  }
};

// The documentation row of a leaf key whose value `text_of` writes: the struct's default, and the
// per-type defaults that differ from it.
template <class S, class TextOf>
DocRow doc_row(const std::string& path, std::string type, const TextOf& text_of, std::string domain,
               std::string applies_text, std::string doc, const std::vector<std::pair<std::string, S>>& type_defaults) {
  DocRow row{path, std::move(type), text_of(S{}), std::move(domain), std::move(applies_text), std::move(doc)};
  for (const auto& [type_name, defaults] : type_defaults)
    if (const std::string text = text_of(defaults); text != row.default_value)
      row.type_defaults.emplace_back(type_name, text);
  return row;
}

// A leaf key: `T` is the member's type, `D` the matching Domain (Domain<std::int64_t> for integer
// members and for the elements of integer lists).
template <class S, class T, class D>
Key<S> key(std::string name, T S::*member, D domain, std::string doc, std::vector<std::string> applies_to = {}) {
  Key<S> k;
  k.name = name;
  k.applies_to = std::move(applies_to);
  k.read = [member, domain](const YamlNode& node, S& s, const std::string& path, Reader& r) {
    return read_value(node, path, domain, s.*member, r);
  };
  k.write = [member, name](const S& s, const std::string& path, int depth, Sink& out) {
    out.leaf(path, depth, name, format_value(s.*member));
  };
  k.describe = [member, domain, doc](const std::string& path, const std::string& applies_text,
                                     const std::vector<std::pair<std::string, S>>& type_defaults,
                                     std::vector<DocRow>& rows) {
    const std::string domain_text = std::is_same_v<T, std::vector<int>> ? cat("each ", domain.text) : domain.text;
    rows.push_back(doc_row<S>(
        path, type_name<T>(), [member](const S& s) { return format_value(s.*member); }, domain_text, applies_text, doc,
        type_defaults));
  };
  return k;
}

// An enum member, written and read as the names of its enum_names() table (type "string", domain
// one of the names).
template <class S, class E>
Key<S> choice(std::string name, E S::*member, std::string doc, std::vector<std::string> applies_to = {}) {
  std::vector<std::string> names;
  for (const EnumName<E>& n : enum_names(E{})) names.emplace_back(n.name);
  const Domain<std::string> domain = one_of(names);
  Key<S> k;
  k.name = name;
  k.applies_to = std::move(applies_to);
  k.read = [member, domain](const YamlNode& node, S& s, const std::string& path, Reader& r) {
    std::string text(enum_name(s.*member));
    if (!read_value(node, path, domain, text, r)) return false;
    for (const EnumName<E>& n : enum_names(E{}))
      if (n.name == text) s.*member = n.value;
    return true;
  };
  const auto text_of = [member](const S& s) { return format_value(std::string(enum_name(s.*member))); };
  k.write = [text_of, name](const S& s, const std::string& path, int depth, Sink& out) {
    out.leaf(path, depth, name, text_of(s));
  };
  k.describe = [text_of, domain, doc](const std::string& path, const std::string& applies_text,
                                      const std::vector<std::pair<std::string, S>>& type_defaults,
                                      std::vector<DocRow>& rows) {
    rows.push_back(doc_row<S>(path, "string", text_of, domain.text, applies_text, doc, type_defaults));
  };
  return k;
}

// A nested struct with its own table (which must outlive this key: tables are function statics).
template <class S, class C>
Key<S> section(std::string name, C S::*member, const Table<C>& table) {
  Key<S> k;
  k.name = name;
  k.read = [member, &table](const YamlNode& node, S& s, const std::string& path, Reader& r) {
    table.read(node, s.*member, path, r);
    return true;
  };
  k.write = [member, &table, name](const S& s, const std::string& path, int depth, Sink& out) {
    out.section(path, depth, name);
    table.write(s.*member, path, depth + 1, out);
  };
  k.describe = [&table](const std::string& path, const std::string&, const std::vector<std::pair<std::string, S>>&,
                        std::vector<DocRow>& rows) { table.describe(path, rows); };
  return k;
}

}  // namespace expt::config::schema
