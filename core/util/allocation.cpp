#include "core/util/allocation.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace expt::util {

std::string format_bytes(double bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 5) {
    bytes /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

void inject_allocation_failure(std::string_view site) {
  const char* hook = std::getenv("EXPT_TEST_FAIL_ALLOCATION");
  if (hook != nullptr && site == hook) throw std::bad_alloc();
}

}  // namespace expt::util
