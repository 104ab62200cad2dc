// Tokens as a person reads them, for `expt data preview`: parity bits, arithmetic symbols and
// digits, bytes of text as characters; token ids of the other tasks as numbers.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/data/task.hpp"

namespace expt::data {

class TokenPrinter {
 public:
  explicit TokenPrinter(const Task& task) : task_name_(task.name()) {}

  // One token: parity "_" (PAD), "0", "1"; mod_arith "_", "+", "-", "*", "=", digits; text the
  // byte as a C-style escaped character; otherwise the id.
  std::string token(std::int32_t id) const;
  // A sequence: text bytes joined into one double-quoted escaped string, other tokens separated by
  // spaces.
  std::string sequence(std::span<const std::int32_t> ids) const;

 private:
  std::string task_name_;
};

}  // namespace expt::data
