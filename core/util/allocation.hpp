// Allocation failures that say what was being allocated (docs/reliability.md "Memory").
//
// A std::bad_alloc from a large allocation (parameters, backward workspace, optimizer state, a
// forward's activations) is rethrown as AllocationFailure, a std::runtime_error whose message names
// the allocation and its size, so `expt run` ends with "out of memory allocating the parameter
// values and gradients (2 x 1610612736 floats, 12.0 GiB)" instead of "std::bad_alloc":
//
//   allocating("parameters", [&] { return describe(n); }, bytes, [&] { values_.assign(n, 0); });
//
// `site` is the test hook's name: with EXPT_TEST_FAIL_ALLOCATION=<site> (test-only, never set in
// production) the allocation throws std::bad_alloc before it starts, so the message can be tested
// without exhausting a machine's memory. Sites: parameters, workspace, optimizer, activations.
#pragma once

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace expt::util {

class AllocationFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "12.0 GiB", "3.4 MiB", "512 B": binary units with one decimal.
std::string format_bytes(double bytes);

// Throws std::bad_alloc when EXPT_TEST_FAIL_ALLOCATION names `site`.
void inject_allocation_failure(std::string_view site);

// Runs allocate(); a std::bad_alloc (or the injected one) becomes an AllocationFailure naming
// what() and the bytes (omitted when negative: not known at the site). `what` is a callable
// returning the description and `bytes` a number or a callable returning one; both are evaluated
// only on failure.
template <class What, class Bytes, class F>
decltype(auto) allocating(std::string_view site, What&& what, Bytes&& bytes, F&& allocate) {
  try {
    inject_allocation_failure(site);
    return std::forward<F>(allocate)();
  } catch (const std::bad_alloc&) {
    double n = 0;
    if constexpr (std::is_invocable_v<Bytes>)
      n = static_cast<double>(bytes());
    else
      n = static_cast<double>(bytes);
    throw AllocationFailure("out of memory allocating " + std::string(what()) +
                            (n >= 0 ? " (" + format_bytes(n) + ")" : std::string()) +
                            "; `expt validate` prints this trial's memory estimate");
  }
}

}  // namespace expt::util
