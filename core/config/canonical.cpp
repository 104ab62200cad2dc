#include "core/config/canonical.hpp"

#include <array>
#include <charconv>
#include <cmath>

namespace expt::config {

std::string format_double(double x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  // Without a precision, to_chars gives the shortest digits that round-trip, here as d.ddde±XX.
  std::array<char, 64> buf{};
  const auto result = std::to_chars(buf.data(), buf.data() + buf.size(), x, std::chars_format::scientific);
  std::string s(buf.data(), result.ptr);
  const std::size_t e = s.find('e');
  if (s.find('.') == std::string::npos) s.insert(e, ".0");  // 1e-03 -> 1.0e-03
  return s;
}

namespace {

bool is_plain_safe(std::string_view s) {
  if (s.empty()) return false;
  const char first = s[0];
  const bool first_ok =
      (first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z') || first == '_' || first == '/';
  if (!first_ok) return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '/' || c == '+' || c == '-';
    if (!ok) return false;
  }
  // Words that YAML 1.1 (PyYAML) or 1.2 read as null or a boolean, in any letter case.
  std::string lower(s);
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  for (std::string_view word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n"})
    if (lower == word) return false;
  return true;
}

}  // namespace

std::string format_string(std::string_view s) {
  if (is_plain_safe(s)) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          constexpr char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[u >> 4];
          out += kHex[u & 15];
        } else {
          out += c;  // printable ASCII and UTF-8 bytes as they are
        }
    }
  }
  out += '"';
  return out;
}

std::string fnv1a64_hex(std::string_view bytes) {
  constexpr std::uint64_t kOffset = 14695981039346656037ull;
  constexpr std::uint64_t kPrime = 1099511628211ull;
  std::uint64_t h = kOffset;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= kPrime;
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kHex[h & 15];
    h >>= 4;
  }
  return out;
}

}  // namespace expt::config
