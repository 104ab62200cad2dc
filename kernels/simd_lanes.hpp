#pragma once
// Float lane groups for kernels that keep running values in registers across a loop the compiler
// would not vectorise on its own (a scan along time with the channels in the lanes): one type per
// width, each with the same small set of lane-wise operations, so a kernel is written once as a
// template over the lane type.
//
//   ScalarLanes   1 lane   (the channels left over after the whole groups)
//   Avx2Lanes     8 lanes  (__m256, AVX2 + FMA)
//   Avx512Lanes   16 lanes (__m512, AVX-512F)
//
// Every operation is exact IEEE single precision lane by lane, fma explicit (never contracted or
// split), min/max with std::min/std::max's NaN behaviour. So a lane gives the same bits as the
// scalar path whatever the width, and exp/sigmoid below give the same bits as math::exp_f32 and
// math::sigmoid (kernels/elementwise_math.hpp, whose operation sequence they repeat; tested in
// tests/kernels/elementwise_math_test.cpp).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#define EXPT_HAVE_AVX2_LANES 1
#endif
#if defined(__AVX512F__)
#define EXPT_HAVE_AVX512_LANES 1
#endif
#if defined(EXPT_HAVE_AVX2_LANES) || defined(EXPT_HAVE_AVX512_LANES)
#include <immintrin.h>
#endif

namespace expt::kernels {

struct ScalarLanes {
  using V = float;
  using I = std::int32_t;
  static constexpr int width = 1;
  static V load(const float* p) { return *p; }
  static void store(float* p, V x) { *p = x; }
  static V set(float x) { return x; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V neg(V x) { return -x; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return std::fma(a, b, c); }
  static V min(V x, float c) { return std::min(x, c); }  // c < x ? c : x (NaN x stays NaN)
  static V max(V x, float c) { return std::max(x, c); }  // x < c ? c : x
  static I bits(V x) { return std::bit_cast<I>(x); }
  static V from_bits(I x) { return std::bit_cast<V>(x); }
  static I iset(std::int32_t x) { return x; }
  static I iadd(I a, I b) { return a + b; }
  static I isub(I a, I b) { return a - b; }
  static I shift_right_1(I x) { return x >> 1; }
  static I shift_left_23(I x) { return x << 23; }
};

#if defined(EXPT_HAVE_AVX2_LANES)
struct Avx2Lanes {
  using V = __m256;
  using I = __m256i;
  static constexpr int width = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  static V set(float x) { return _mm256_set1_ps(x); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V neg(V x) { return _mm256_xor_ps(x, set(-0.0f)); }  // the sign bit flipped, as -x
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // MINPS(a, b) = a < b ? a : b, b when either is NaN: with a = c that is std::min(x, c).
  static V min(V x, float c) { return _mm256_min_ps(set(c), x); }
  static V max(V x, float c) { return _mm256_max_ps(set(c), x); }
  static I bits(V x) { return _mm256_castps_si256(x); }
  static V from_bits(I x) { return _mm256_castsi256_ps(x); }
  static I iset(std::int32_t x) { return _mm256_set1_epi32(x); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I shift_right_1(I x) { return _mm256_srai_epi32(x, 1); }
  static I shift_left_23(I x) { return _mm256_slli_epi32(x, 23); }
};
#endif

#if defined(EXPT_HAVE_AVX512_LANES)
struct Avx512Lanes {
  using V = __m512;
  using I = __m512i;
  static constexpr int width = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  static V set(float x) { return _mm512_set1_ps(x); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V neg(V x) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN)));
  }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V min(V x, float c) { return _mm512_min_ps(set(c), x); }
  static V max(V x, float c) { return _mm512_max_ps(set(c), x); }
  static I bits(V x) { return _mm512_castps_si512(x); }
  static V from_bits(I x) { return _mm512_castsi512_ps(x); }
  static I iset(std::int32_t x) { return _mm512_set1_epi32(x); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I shift_right_1(I x) { return _mm512_srai_epi32(x, 1); }
  static I shift_left_23(I x) { return _mm512_slli_epi32(x, 23); }
};
#endif

namespace lanes {

// math::exp_f32, operation for operation (see there for the method and its accuracy).
template <class L>
typename L::V exp(typename L::V x) {
  using V = typename L::V;
  using I = typename L::I;
  x = L::max(L::min(x, 89.0f), -104.0f);
  const V shifter = L::set(0x1.8p23f);
  const V shifted = L::fma(x, L::set(1.44269504088896341f), shifter);
  const I n = L::isub(L::bits(shifted), L::bits(shifter));
  const V nf = L::sub(shifted, shifter);
  V r = L::fma(nf, L::set(-0.693359375f), x);
  r = L::fma(nf, L::set(2.12194440e-4f), r);
  const V r2 = L::mul(r, r);
  V p = L::set(1.9875691500e-4f);
  p = L::fma(p, r, L::set(1.3981999507e-3f));
  p = L::fma(p, r, L::set(8.3334519073e-3f));
  p = L::fma(p, r, L::set(4.1665795894e-2f));
  p = L::fma(p, r, L::set(1.6666665459e-1f));
  p = L::fma(p, r, L::set(5.0000001201e-1f));
  p = L::add(L::fma(p, r2, r), L::set(1.0f));
  const I n1 = L::shift_right_1(n), n2 = L::isub(n, n1);
  const V s1 = L::from_bits(L::shift_left_23(L::iadd(n1, L::iset(127))));
  const V s2 = L::from_bits(L::shift_left_23(L::iadd(n2, L::iset(127))));
  return L::mul(L::mul(p, s1), s2);
}

// math::sigmoid: 1 / (1 + e^-z).
template <class L>
typename L::V sigmoid(typename L::V z) {
  const typename L::V one = L::set(1.0f);
  return L::div(one, L::add(one, exp<L>(L::neg(z))));
}

}  // namespace lanes

}  // namespace expt::kernels
