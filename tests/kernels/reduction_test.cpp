// kernels/reduction.hpp: the fixed-order dot product against a long double sum, every length
// around the lane count, and the same bits wherever the data sits in memory.
#include "kernels/reduction.hpp"

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

using expt::kernels::dot_fixed_order;
using expt::kernels::sum_squares_fixed_order;

TEST_CASE("dot_fixed_order equals a long double sum to accumulation-type rounding, for every length",
          "[kernels][reduction]") {
  std::vector<float> a(300), b(300);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
    b[i] = std::cos(1.13f * static_cast<float>(i)) - 0.25f;
  }
  for (std::size_t n = 0; n <= a.size(); ++n) {
    long double exact = 0, magnitude = 0;
    for (std::size_t i = 0; i < n; ++i) {
      exact += static_cast<long double>(a[i]) * b[i];
      magnitude += std::abs(static_cast<long double>(a[i]) * b[i]);
    }
    // Error bound of a summation tree of depth <= n/16 + 4 (Higham): n u sum|a b| is ample.
    const double bound_d = static_cast<double>(magnitude) * 1.2e-16 * static_cast<double>(n + 1);
    const double bound_f = static_cast<double>(magnitude) * 6e-8 * static_cast<double>(n + 1);
    CHECK(std::abs(dot_fixed_order<double>(a.data(), b.data(), n) - static_cast<double>(exact)) <= bound_d);
    CHECK(std::abs(dot_fixed_order<float>(a.data(), b.data(), n) - static_cast<double>(exact)) <= bound_f);
  }
  CHECK(sum_squares_fixed_order<double>(a.data(), 0) == 0.0);
  const float three_four[2] = {3.0f, 4.0f};
  CHECK(sum_squares_fixed_order<float>(three_four, 2) == 25.0f);
}

TEST_CASE("dot_fixed_order gives the same bits at every memory offset", "[kernels][reduction]") {
  std::vector<float> base(1000);
  for (std::size_t i = 0; i < base.size(); ++i) base[i] = std::sin(0.71f * static_cast<float>(i)) * 1e3f;
  const std::size_t n = 517;
  const float reference = dot_fixed_order<float>(base.data(), base.data() + 300, n);
  for (std::size_t offset : {1u, 2u, 3u, 5u, 8u}) {
    // The same values copied to a shifted position: only the addresses change.
    std::vector<float> shifted(base.size() + offset);
    std::copy(base.begin(), base.end(), shifted.begin() + static_cast<std::ptrdiff_t>(offset));
    const float got = dot_fixed_order<float>(shifted.data() + offset, shifted.data() + offset + 300, n);
    CHECK(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(reference));
  }
}
