// kernels/elementwise_math.hpp against the double-precision libm: the float exp and log1p within
// 2 ulp over their whole useful range, the special values, the activations built on them, and
// the same bits from a vectorised loop as from scalar calls, and from the lane groups of
// kernels/simd_lanes.hpp.
#include "kernels/elementwise_math.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/simd_lanes.hpp"

namespace math = expt::kernels::math;

namespace {

// |approx - exact| in units of the float spacing at the exact value (the denormal spacing below
// the normal range).
double ulp_error(float approx, double exact) {
  const double spacing = std::max(static_cast<double>(std::numeric_limits<float>::denorm_min()),
                                  std::abs(static_cast<double>(std::nextafter(static_cast<float>(exact), INFINITY)) -
                                           static_cast<double>(static_cast<float>(exact))));
  return std::abs(static_cast<double>(approx) - exact) / spacing;
}

// About a million floats in [lo, hi), evenly spaced in their bit patterns (so every exponent is
// covered), plus hi's predecessor.
std::vector<float> float_grid(float lo, float hi) {
  const auto key = [](float x) {  // monotone map from floats to integers
    const std::int64_t b = std::bit_cast<std::int32_t>(x);
    return b < 0 ? -(b & 0x7fffffff) : b;
  };
  const auto from_key = [](std::int64_t k) {
    return k < 0 ? std::bit_cast<float>(static_cast<std::int32_t>(-k) | std::int32_t{INT32_MIN})
                 : std::bit_cast<float>(static_cast<std::int32_t>(k));
  };
  const std::int64_t a = key(lo), b = key(hi), stride = std::max<std::int64_t>(1, (b - a) / (1 << 20));
  std::vector<float> out;
  for (std::int64_t k = a; k < b; k += stride) out.push_back(from_key(k));
  out.push_back(std::nextafter(hi, lo));
  return out;
}

}  // namespace

TEST_CASE("exp_f32 is within 2 ulp of exp over [-103, 88.7], denormals included", "[kernels][math]") {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x : float_grid(-103.0f, 88.72f)) {
    const double err = ulp_error(math::exp_f32(x), std::exp(static_cast<double>(x)));
    if (err > worst) worst = err, worst_x = x;
  }
  INFO("worst x " << worst_x);
  CHECK(worst <= 2.0);
}

TEST_CASE("exp_f32 special values: overflow, underflow, infinities, NaN", "[kernels][math]") {
  CHECK(math::exp_f32(0.0f) == 1.0f);
  CHECK(math::exp_f32(89.0f) == std::numeric_limits<float>::infinity());
  CHECK(math::exp_f32(std::numeric_limits<float>::infinity()) == std::numeric_limits<float>::infinity());
  CHECK(math::exp_f32(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(math::exp_f32(-200.0f) == 0.0f);
  CHECK(std::isnan(math::exp_f32(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("log1p_f32 is within 2 ulp of log1p over [0, 1e30]", "[kernels][math]") {
  double worst = 0.0;
  float worst_y = 0.0f;
  std::vector<float> ys = float_grid(1e-30f, 1e30f);
  ys.push_back(0.0f);
  for (float y : ys) {
    const double err = ulp_error(math::log1p_f32(y), std::log1p(static_cast<double>(y)));
    if (err > worst) worst = err, worst_y = y;
  }
  INFO("worst y " << worst_y);
  CHECK(worst <= 2.0);
  CHECK(math::log1p_f32(0.0f) == 0.0f);
  CHECK(std::isnan(math::log1p_f32(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("float sigmoid, log_sigmoid and softplus match double libm, at the extremes too", "[kernels][math]") {
  double worst_sig = 0, worst_logsig = 0, worst_softplus = 0;
  for (float z : float_grid(-120.0f, 120.0f)) {
    const double zd = z;
    // sigma(z) = 1 / (1 + e^-z) in float is 0 once e^-z overflows the float range, as with
    // libm's expf; below that the exact value is a denormal the formula cannot produce.
    const bool overflow = std::exp(-zd) > std::numeric_limits<float>::max();
    const double sig = overflow ? 0.0 : 1.0 / (1.0 + std::exp(-zd));
    const double logsig = std::min(zd, 0.0) - std::log1p(std::exp(-std::abs(zd)));
    const double sp = std::max(zd, 0.0) + std::log1p(std::exp(-std::abs(zd)));
    worst_sig = std::max(worst_sig, ulp_error(math::sigmoid(z), sig));
    worst_logsig = std::max(worst_logsig, ulp_error(math::log_sigmoid(z), logsig));
    worst_softplus = std::max(worst_softplus, ulp_error(math::softplus(z), sp));
  }
  // Each is two or three roundings on top of exp/log1p: a few ulp (denormal ulps for sigma near
  // -88, where 1 / (1 + e^-z) rounds in the denormal range).
  CHECK(worst_sig <= 4.0);
  CHECK(worst_logsig <= 4.0);
  CHECK(worst_softplus <= 4.0);
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(math::sigmoid(-inf) == 0.0f);
  CHECK(math::sigmoid(inf) == 1.0f);
  CHECK(math::log_sigmoid(inf) == 0.0f);
  CHECK(math::log_sigmoid(-inf) == -inf);
  CHECK(math::softplus(-inf) == 0.0f);
  CHECK(std::isnan(math::log_sigmoid(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(math::sigmoid(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("double overloads are the std functions", "[kernels][math]") {
  for (double z : {-30.0, -1.5, 0.0, 0.25, 7.0, 40.0}) {
    CHECK(math::exp(z) == std::exp(z));
    CHECK(math::sigmoid(z) == 1.0 / (1.0 + std::exp(-z)));
    CHECK(math::log_sigmoid(z) == std::min(z, 0.0) - std::log1p(std::exp(-std::abs(z))));
  }
}

TEST_CASE("a vectorised loop gives the same bits as scalar calls, whatever the alignment", "[kernels][math]") {
  std::vector<float> x(1031);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = -90.0f + 0.1731f * static_cast<float>(i);
  for (std::size_t offset : {0u, 1u, 3u}) {
    const std::size_t n = x.size() - offset;
    std::vector<float> out(n);
    const float* in = x.data() + offset;
    for (std::size_t i = 0; i < n; ++i) out[i] = math::log_sigmoid(in[i]) + math::exp(in[i]);
    for (std::size_t i = 0; i < n; ++i) {
      // volatile keeps this call out of the vectoriser.
      volatile float v = in[i];
      const float scalar = math::log_sigmoid(static_cast<float>(v)) + math::exp(static_cast<float>(v));
      REQUIRE(std::bit_cast<std::uint32_t>(out[i]) == std::bit_cast<std::uint32_t>(scalar));
    }
  }
}

namespace {

// exp and sigmoid of every value in xs through lane type L, lane by lane against the scalar
// functions: the same bits (NaN for NaN).
template <class L>
void check_lanes_match_scalar(const std::vector<float>& xs) {
  namespace lanes = expt::kernels::lanes;
  float e[L::width], s[L::width];
  for (std::size_t i = 0; i + L::width <= xs.size(); i += L::width) {
    L::store(e, lanes::exp<L>(L::load(xs.data() + i)));
    L::store(s, lanes::sigmoid<L>(L::load(xs.data() + i)));
    for (int l = 0; l < L::width; ++l) {
      const float x = xs[i + static_cast<std::size_t>(l)];
      INFO("lanes " << L::width << " x = " << x);
      if (std::isnan(x)) {
        CHECK(std::isnan(e[l]));
        CHECK(std::isnan(s[l]));
        continue;
      }
      REQUIRE(std::bit_cast<std::uint32_t>(e[l]) == std::bit_cast<std::uint32_t>(math::exp_f32(x)));
      REQUIRE(std::bit_cast<std::uint32_t>(s[l]) == std::bit_cast<std::uint32_t>(math::sigmoid(x)));
    }
  }
}

}  // namespace

TEST_CASE("lane-group exp and sigmoid give the scalar functions' bits at every width", "[kernels][math]") {
  // Both signs over the whole range (denormal results, overflow), the clamps' edges, the specials;
  // a multiple of 16 values so that every width sees all of them.
  std::vector<float> xs = float_grid(-120.0f, 120.0f);
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {0.0f, -0.0f, 89.0f, -104.0f, 88.72f, -103.97f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::max()})
    xs.push_back(x);
  while (xs.size() % 16 != 0) xs.push_back(0.5f);
  check_lanes_match_scalar<expt::kernels::ScalarLanes>(xs);
#if defined(EXPT_HAVE_AVX2_LANES)
  check_lanes_match_scalar<expt::kernels::Avx2Lanes>(xs);
#else
  WARN("AVX2 lanes not compiled in this build (no -march with AVX2 and FMA): not checked");
#endif
#if defined(EXPT_HAVE_AVX512_LANES)
  check_lanes_match_scalar<expt::kernels::Avx512Lanes>(xs);
#else
  WARN("AVX-512 lanes not compiled in this build (no -march with AVX-512F): not checked");
#endif
}
