#include "core/config/schema.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

#include "core/config/canonical.hpp"
#include "core/config/text.hpp"

namespace expt::config::schema {

void Reader::error(const Position& at, const std::string& key_path, std::string message) {
  failed_.insert(key_path);
  errors_.add(at, key_path, std::move(message));
}

const Position* Reader::where(const std::string& key_path) const {
  const auto it = positions_.find(key_path);
  return it == positions_.end() ? nullptr : &it->second;
}

std::string show(double v) {
  std::array<char, 64> buf{};
  const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return std::string(buf.data(), result.ptr);
}

namespace {

std::optional<std::string> not_finite(double v) {
  if (std::isfinite(v)) return std::nullopt;
  return cat("must be a finite number, got ", format_double(v));
}

std::optional<std::int64_t> read_integer(const YamlNode& node, const std::string& path,
                                         const Domain<std::int64_t>& domain, Reader& r) {
  r.given(path, node.pos);
  if (node.kind != YamlNode::Kind::scalar || !node.plain || !is_integer_text(node.text)) {
    r.error(node.pos, path, cat("expected an integer, got ", describe_node(node)));
    return std::nullopt;
  }
  const auto v = integer_value(node.text);
  if (!v) r.error(node.pos, path, cat("integer ", node.text, " is out of range (must be ", domain.text, ")"));
  return v;
}

template <class Int>
std::optional<std::string> fits(std::int64_t v) {
  if (std::in_range<Int>(v)) return std::nullopt;
  if (v < 0)
    return cat("must be at least ", std::to_string(std::numeric_limits<Int>::min()), ", got ", std::to_string(v));
  return cat("must be at most ", std::to_string(std::numeric_limits<Int>::max()), ", got ", std::to_string(v));
}

template <class Int>
bool read_integer_into(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, Int& out,
                       Reader& r) {
  const auto v = read_integer(node, path, domain, r);
  if (!v) return false;
  auto problem = domain.check(*v);
  if (!problem) problem = fits<Int>(*v);
  if (problem) {
    r.error(node.pos, path, *problem);
    return false;
  }
  out = static_cast<Int>(*v);
  return true;
}

}  // namespace

Domain<std::int64_t> at_least(std::int64_t lo) {
  const std::string text = cat(">= ", std::to_string(lo));
  return {text, [lo, text](const std::int64_t& v) -> std::optional<std::string> {
            if (v >= lo) return std::nullopt;
            return cat("must be ", text, ", got ", std::to_string(v));
          }};
}

Domain<std::int64_t> int_range(std::int64_t lo, std::int64_t hi, std::string text) {
  return {text, [lo, hi, text](const std::int64_t& v) -> std::optional<std::string> {
            if (v >= lo && v <= hi) return std::nullopt;
            return cat("must be in ", text, ", got ", std::to_string(v));
          }};
}

Domain<double> above(double lo) {
  const std::string text = cat("> ", show(lo));
  return {text, [lo, text](const double& v) -> std::optional<std::string> {
            if (auto bad = not_finite(v)) return bad;
            if (v > lo) return std::nullopt;
            return cat("must be ", text, ", got ", show(v));
          }};
}

Domain<double> real_at_least(double lo) {
  const std::string text = cat(">= ", show(lo));
  return {text, [lo, text](const double& v) -> std::optional<std::string> {
            if (auto bad = not_finite(v)) return bad;
            if (v >= lo) return std::nullopt;
            return cat("must be ", text, ", got ", show(v));
          }};
}

Domain<double> real_range(double lo, double hi, Upper upper) {
  const bool open = upper == Upper::open;
  const std::string text = cat("[", show(lo), ", ", show(hi), open ? ")" : "]");
  return {text, [lo, hi, open, text](const double& v) -> std::optional<std::string> {
            if (auto bad = not_finite(v)) return bad;
            if (v >= lo && (open ? v < hi : v <= hi)) return std::nullopt;
            return cat("must be in ", text, ", got ", show(v));
          }};
}

Domain<bool> any_bool() {
  return {"true, false", [](const bool&) -> std::optional<std::string> { return std::nullopt; }};
}

Domain<std::string> one_of(std::vector<std::string> values) {
  std::string text;
  for (const std::string& v : values) text += cat(text.empty() ? "" : ", ", v);
  return {text, [values, text](const std::string& v) -> std::optional<std::string> {
            if (std::find(values.begin(), values.end(), v) != values.end()) return std::nullopt;
            std::string message = cat("'", v, "' is not one of ", text);
            if (const auto guess = closest_match(v, values)) message += cat("; did you mean '", *guess, "'?");
            return message;
          }};
}

Domain<std::string> non_empty() {
  return {"non-empty", [](const std::string& v) -> std::optional<std::string> {
            if (!v.empty()) return std::nullopt;
            return std::string("must not be empty");
          }};
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, int& out,
                Reader& r) {
  return read_integer_into(node, path, domain, out, r);
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, std::int64_t& out,
                Reader& r) {
  return read_integer_into(node, path, domain, out, r);
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& domain, std::uint64_t& out,
                Reader& r) {
  return read_integer_into(node, path, domain, out, r);
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<std::int64_t>& element_domain,
                std::vector<int>& out, Reader& r) {
  r.given(path, node.pos);
  if (node.kind != YamlNode::Kind::sequence) {
    r.error(node.pos, path, cat("expected a list of integers, got ", describe_node(node)));
    return false;
  }
  std::vector<int> values;
  bool ok = true;
  for (std::size_t i = 0; i < node.items.size(); ++i) {
    int v = 0;
    if (read_integer_into(node.items[i], path + "[" + std::to_string(i) + "]", element_domain, v, r))
      values.push_back(v);
    else
      ok = false;
  }
  if (ok) out = std::move(values);
  return ok;
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<double>& domain, double& out, Reader& r) {
  r.given(path, node.pos);
  if (node.kind != YamlNode::Kind::scalar || !node.plain || !is_float_text(node.text)) {
    r.error(node.pos, path, cat("expected a number, got ", describe_node(node)));
    return false;
  }
  const auto v = float_value(node.text);
  if (!v) {
    r.error(node.pos, path, cat("number ", node.text, " is out of the range of a double"));
    return false;
  }
  if (const auto problem = domain.check(*v)) {
    r.error(node.pos, path, *problem);
    return false;
  }
  out = *v + 0.0;  // -0.0 becomes 0.0: one value, one canonical spelling
  return true;
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<bool>& domain, bool& out, Reader& r) {
  r.given(path, node.pos);
  const auto v = node.kind == YamlNode::Kind::scalar && node.plain ? bool_value(node.text) : std::nullopt;
  if (!v) {
    r.error(node.pos, path, cat("expected a boolean (true or false), got ", describe_node(node)));
    return false;
  }
  if (const auto problem = domain.check(*v)) {
    r.error(node.pos, path, *problem);
    return false;
  }
  out = *v;
  return true;
}

bool read_value(const YamlNode& node, const std::string& path, const Domain<std::string>& domain, std::string& out,
                Reader& r) {
  r.given(path, node.pos);
  if (node.kind != YamlNode::Kind::scalar) {
    r.error(node.pos, path, cat("expected a string, got ", describe_node(node)));
    return false;
  }
  if (const auto problem = domain.check(node.text)) {
    r.error(node.pos, path, *problem);
    return false;
  }
  out = node.text;
  return true;
}

std::string format_value(int v) { return std::to_string(v); }
std::string format_value(std::int64_t v) { return std::to_string(v); }
std::string format_value(std::uint64_t v) { return std::to_string(v); }
std::string format_value(double v) { return format_double(v); }
std::string format_value(bool v) { return v ? "true" : "false"; }
std::string format_value(const std::string& v) { return format_string(v); }
std::string format_value(const std::vector<int>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", std::to_string(v[i]));
  return s + "]";
}

namespace {

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string markdown_table(const std::vector<DocRow>& rows) {
  std::string out = "| key | type | default | domain | applies to | meaning |\n";
  out += "|---|---|---|---|---|---|\n";
  for (const DocRow& row : rows) {
    std::string default_cell = cat("`", row.default_value, "`");
    for (std::size_t i = 0; i < row.type_defaults.size(); ++i)
      default_cell += cat(i ? ", " : " (", row.type_defaults[i].first, " `", row.type_defaults[i].second, "`",
                          i + 1 == row.type_defaults.size() ? ")" : "");
    out += cat("| `", row.path, "` | ", row.type, " | ", default_cell, " | ", markdown_cell(row.domain), " | ",
               markdown_cell(row.applies_to), " | ", markdown_cell(row.meaning), " |\n");
  }
  return out;
}

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

namespace {

// Optimal string alignment distance (Levenshtein plus swaps of neighbours), ignoring letter case.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

}  // namespace

std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // Up to one edit per three letters (at least 1, at most 3): `lrr` -> `lr`, `hed` -> `heads`,
  // but `x` suggests nothing.
  const std::size_t allowed = std::clamp<std::size_t>(word.size() / 3 + 1, 1, 3);
  std::optional<std::string> best;
  std::size_t best_distance = allowed + 1;
  for (const std::string& c : candidates) {
    const std::size_t dist = edit_distance(word, c);
    if (dist < best_distance && dist < std::max(word.size(), c.size())) {
      best = c;
      best_distance = dist;
    }
  }
  return best;
}

std::string unknown_key_message(const std::string& key, const std::vector<std::string>& valid_keys) {
  std::string message = cat("unknown key '", key, "'");
  if (const auto guess = closest_match(key, valid_keys)) return cat(message, "; did you mean '", *guess, "'?");
  message += "; valid keys here:";
  for (std::size_t i = 0; i < valid_keys.size(); ++i) message += cat(i ? ", " : " ", valid_keys[i]);
  return message;
}

std::string inapplicable_key_message(const std::string& key, const std::string& selector_path, const std::string& type,
                                     const std::vector<std::string>& applies_to) {
  std::string message = cat("key '", key, "' does not apply to ", selector_path, " '", type, "' (only to");
  for (std::size_t i = 0; i < applies_to.size(); ++i) message += cat(i ? ", " : " ", applies_to[i]);
  return message + ")";
}

}  // namespace expt::config::schema
