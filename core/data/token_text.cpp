#include "core/data/token_text.hpp"

#include <cstdio>

#include "core/data/answer_position.hpp"

namespace expt::data {

namespace {

// A byte as it would appear inside a C string literal.
std::string escaped_byte(std::int32_t id) {
  switch (id) {
    case '\n':
      return "\\n";
    case '\t':
      return "\\t";
    case '\r':
      return "\\r";
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    default:
      break;
  }
  if (id >= 0x20 && id < 0x7F) return std::string(1, static_cast<char>(id));
  char hex[8];
  std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned>(id) & 0xFFu);
  return hex;
}

}  // namespace

std::string TokenPrinter::token(std::int32_t id) const {
  if (task_name_ == "parity") {
    if (id == kPad) return "_";
    if (id == 1 || id == 2) return std::to_string(id - 1);
  } else if (task_name_ == "mod_arith") {
    using T = AnswerPositionTask;
    if (id == kPad) return "_";
    if (id == T::kPlus) return "+";
    if (id == T::kMinus) return "-";
    if (id == T::kTimes) return "*";
    if (id == T::kEquals) return "=";
    if (id >= T::kFirstDigit) return std::to_string(id - T::kFirstDigit);
  } else if (task_name_ == "text" && id >= 0 && id < 256) {
    return escaped_byte(id);
  }
  return std::to_string(id);
}

std::string TokenPrinter::sequence(std::span<const std::int32_t> ids) const {
  std::string s;
  if (task_name_ == "text") {
    s += '"';
    for (std::int32_t id : ids) s += token(id);
    s += '"';
    return s;
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) s += ' ';
    s += token(ids[i]);
  }
  return s;
}

}  // namespace expt::data
