// String building for messages. cat() appends its parts in order; it also sidesteps GCC 12's false
// -Wrestrict warning on `"literal" + std::string` at -O2 and above.
#pragma once

#include <string>
#include <string_view>

namespace expt::config {

template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s.append(std::string_view(parts)), ...);
  return s;
}

}  // namespace expt::config
