#pragma once
// Elementwise exp, log1p and the activations built on them, written so that GCC vectorises the
// loops that call them (no libm call, no table, no branch) and so that every SIMD lane and the
// scalar remainder give the same bits (explicit fma, the same operations in the same order):
// results do not depend on alignment, loop peeling or the vector width.
//
// float: exp_f32 / log1p_f32 below (within 2 ulp of the exact result, tested against double in
// tests/kernels/elementwise_math_test.cpp). double: the std functions, so gradient checks and the
// fp64 references are untouched.
//
//   exp(x):   x = n ln2 + r, |r| <= ln2/2; e^r by the degree-6 minimax polynomial of Cephes' expf;
//             2^n applied as 2^(n/2) 2^(n - n/2) so that results from ~1e-45 (denormal) to
//             overflow (+inf above 88.72) round as expf does. NaN in -> NaN out.
//   log1p(y): u = 1 + y = m 2^e, m in [sqrt(1/2), sqrt(2)); log m by Cephes' logf polynomial;
//             plus (y - (u - 1)) / u, the first-order correction for the rounding of 1 + y.
//             For y >= 0 (every caller: y = exp(-|z|) in (0, 1]). NaN in -> NaN out.
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace expt::kernels::math {

inline float exp_f32(float x) {
  // Clamp without losing NaN: std::min/max return their first argument when a comparison is false.
  x = std::max(std::min(x, 89.0f), -104.0f);
  // n = round(x / ln2) by the shifter trick: the integer lands in the low mantissa bits.
  constexpr float shifter = 0x1.8p23f;
  const float shifted = std::fma(x, 1.44269504088896341f, shifter);
  const std::int32_t n = std::bit_cast<std::int32_t>(shifted) - std::bit_cast<std::int32_t>(shifter);
  const float nf = shifted - shifter;
  // r = x - n ln2 with ln2 split in two so that n ln2_hi is exact.
  float r = std::fma(nf, -0.693359375f, x);
  r = std::fma(nf, 2.12194440e-4f, r);
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  p = std::fma(p, r2, r) + 1.0f;
  // 2^n in two factors, each a normal float for n in [-150, 129].
  const std::int32_t n1 = n >> 1, n2 = n - n1;
  const float s1 = std::bit_cast<float>((n1 + 127) << 23);
  const float s2 = std::bit_cast<float>((n2 + 127) << 23);
  return p * s1 * s2;
}

inline float log1p_f32(float y) {
  const float u = 1.0f + y;
  const std::int32_t bits = std::bit_cast<std::int32_t>(u);
  // u = m 2^e with m in [0.5, 1).
  std::int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f000000);
  // Move m to [sqrt(1/2), sqrt(2)) so that f = m - 1 is small.
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  const float f = low ? m + m - 1.0f : m - 1.0f;
  const float ef = static_cast<float>(e);
  const float f2 = f * f;
  float p = 7.0376836292e-2f;
  p = std::fma(p, f, -1.1514610310e-1f);
  p = std::fma(p, f, 1.1676998740e-1f);
  p = std::fma(p, f, -1.2420140846e-1f);
  p = std::fma(p, f, 1.4249322787e-1f);
  p = std::fma(p, f, -1.6668057665e-1f);
  p = std::fma(p, f, 2.0000714765e-1f);
  p = std::fma(p, f, -2.4999993993e-1f);
  p = std::fma(p, f, 3.3333331174e-1f);
  float tail = p * f * f2;
  tail = std::fma(ef, -2.12194440e-4f, tail);
  tail = std::fma(f2, -0.5f, tail);
  const float log_u = std::fma(ef, 0.693359375f, f + tail);
  return log_u + (y - (u - 1.0f)) / u;
}

template <class T>
T exp(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_f32(x);
  else
    return std::exp(x);
}

template <class T>
T log1p(T y) {
  if constexpr (std::is_same_v<T, float>)
    return log1p_f32(y);
  else
    return std::log1p(y);
}

// sigma(z) = 1 / (1 + e^-z).
template <class T>
T sigmoid(T z) {
  return T(1) / (T(1) + exp(-z));
}

// log sigma(z) = min(z, 0) - log(1 + e^-|z|): no overflow for either sign.
template <class T>
T log_sigmoid(T z) {
  return std::min(z, T(0)) - log1p(exp(-std::abs(z)));
}

// softplus(z) = log(1 + e^z) = max(z, 0) + log(1 + e^-|z|).
template <class T>
T softplus(T z) {
  return std::max(z, T(0)) + log1p(exp(-std::abs(z)));
}

}  // namespace expt::kernels::math
