// kernels/reduction.hpp: the fixed-order dot product against a long double sum, every length
// around the lane count, and the same bits wherever the data sits in memory; the two lane orders
// against the orders written out here.
#include "kernels/reduction.hpp"

#include <algorithm>
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

// The two named orders, against the orders written out term by term here. Sums of terms rather
// than products, so that no multiply-add can be fused into an fma on either side.
TEST_CASE("lane_sum adds in the order its LaneOrder names, and the two orders differ", "[kernels][reduction]") {
  using expt::kernels::kSumLanes;
  using expt::kernels::lane_sum;
  using expt::kernels::LaneOrder;
  std::vector<float> x(100);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.37f * static_cast<float>(i)) * std::pow(10.0f, i % 7);
  bool orders_differ = false;
  for (std::size_t n = 0; n <= x.size(); ++n) {
    auto term = [&](std::size_t i) { return x[i]; };
    // tree: term i into lane i mod 16 (the tail too), then lane l += lane l + w for w = 8, 4, 2, 1.
    float lanes[16] = {};
    for (std::size_t i = 0; i < n; ++i) lanes[i % kSumLanes] += x[i];
    for (std::size_t w = 8; w > 0; w /= 2)
      for (std::size_t l = 0; l < w; ++l) lanes[l] += lanes[l + w];
    const float tree = lanes[0];
    // in_order_then_tail: whole blocks into the lanes, lanes 0..15 in order from 0, then the tail.
    const std::size_t whole = n / kSumLanes * kSumLanes;
    float blocks[16] = {};
    for (std::size_t i = 0; i < whole; ++i) blocks[i % kSumLanes] += x[i];
    float in_order = 0;
    for (float b : blocks) in_order += b;
    for (std::size_t i = whole; i < n; ++i) in_order += x[i];
    INFO("n = " << n);
    CHECK(std::bit_cast<std::uint32_t>(lane_sum<LaneOrder::tree, float>(n, term)) ==
          std::bit_cast<std::uint32_t>(tree));
    CHECK(std::bit_cast<std::uint32_t>(lane_sum<LaneOrder::in_order_then_tail, float>(n, term)) ==
          std::bit_cast<std::uint32_t>(in_order));
    orders_differ = orders_differ || tree != in_order;
  }
  CHECK(orders_differ);
}

TEST_CASE("fold_lanes gives the same value on a Lanes vector as on an array", "[kernels][reduction]") {
  using expt::kernels::fold_lanes;
  using expt::kernels::LaneOrder;
  using expt::kernels::Lanes;
  float a[16];
  for (int l = 0; l < 16; ++l) a[l] = std::cos(0.9f * static_cast<float>(l)) * std::pow(10.0f, l % 5);
  Lanes<float> v;
  expt::kernels::load_lanes(a, v);
  float copy[16];
  std::copy(a, a + 16, copy);
  const float in_order_array = fold_lanes<LaneOrder::in_order_then_tail, float>(copy);
  CHECK(fold_lanes<LaneOrder::in_order_then_tail, float>(v) == in_order_array);
  const float tree_array = fold_lanes<LaneOrder::tree, float>(copy);
  CHECK(fold_lanes<LaneOrder::tree, float>(v) == tree_array);
}
