// Named enumerators: for each enumerated config option, one table spells every value. The schema
// reads, writes and documents an enum member through it (schema.hpp `choice`), so a string is
// checked once, when the config is loaded, and the code downstream only sees the enum.
#pragma once

#include <span>
#include <string_view>

namespace expt::config {

template <class E>
struct EnumName {
  E value;
  std::string_view name;
};

// The spelling of v: its entry in the table that `enum_names(E)` (found by argument-dependent
// lookup next to the enum) returns.
template <class E>
std::string_view enum_name(E v) {
  for (const EnumName<E>& n : enum_names(v))
    if (n.value == v) return n.name;
  return {};
}

}  // namespace expt::config
