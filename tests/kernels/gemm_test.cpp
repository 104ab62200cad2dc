// kernels::gemm against kernels::gemm_reference (triple loop), on every backend: all four
// transpose combinations, odd sizes, row strides larger than the logical widths, alpha/beta
// including the accumulate form (beta = 1) and beta = 0 over garbage (NaN) in C; the symmetric
// products (syrk, symm) against the same reference; bit-identical results across repeated calls
// and buffer offsets; the BLAS accounting; the start-up check of the GEMM kernels against the CPU.
#include "kernels/gemm.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/processor.hpp"
#include "tests/kernels/gradient_check.hpp"

using expt::kernels::gemm_reference;
using expt::kernels::GemmBackend;
using expt::kernels::Trans;

namespace {

constexpr GemmBackend kBackends[] = {GemmBackend::openblas, GemmBackend::onednn, GemmBackend::libxsmm};

struct Shape {
  int M, N, K;
};

// Runs one product on `backend` (float) or the double path, with row strides `pad` wider than
// the logical widths, and checks it against gemm_reference in double on the same inputs.
template <class T>
constexpr double unit_roundoff() {
  return std::numeric_limits<T>::epsilon() / 2;
}

std::vector<double> absolute(std::vector<double> v) {
  for (double& x : v) x = std::abs(x);
  return v;
}

template <class T>
void check_gemm(GemmBackend backend, Shape s, Trans ta, Trans tb, T alpha, T beta, bool garbage_c) {
  const int pad = 3;
  const int a_rows = ta == Trans::no ? s.M : s.K, a_cols = ta == Trans::no ? s.K : s.M;
  const int b_rows = tb == Trans::no ? s.K : s.N, b_cols = tb == Trans::no ? s.N : s.K;
  const int lda = a_cols + pad, ldb = b_cols + pad, ldc = s.N + pad;
  const auto A = expt::test::random_normal<T>(static_cast<std::size_t>(a_rows) * lda, 1);
  const auto B = expt::test::random_normal<T>(static_cast<std::size_t>(b_rows) * ldb, 2);
  auto C0 = expt::test::random_normal<T>(static_cast<std::size_t>(s.M) * ldc, 3);
  if (garbage_c)  // beta = 0 must not read C (BLAS semantics): NaN in the logical part only
    for (int i = 0; i < s.M; ++i)
      for (int j = 0; j < s.N; ++j) C0[static_cast<std::size_t>(i) * ldc + j] = std::numeric_limits<T>::quiet_NaN();
  auto C = C0;
  if constexpr (std::is_same_v<T, float>)
    expt::kernels::sgemm_on(backend, ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  else
    expt::kernels::gemm<double>(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  // The reference in double on the same (T-valued) inputs, and the same product of absolute values:
  // any summation order of K products in precision u is within (K + 2) u |alpha| |A| |B| + |beta C|
  // of the exact result (the classic bound gamma_{K+2}); Ca holds that size per entry.
  std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end()), Cd(C0.begin(), C0.end());
  std::vector<double> Aa = absolute(Ad), Ba = absolute(Bd), Ca = absolute(Cd);
  gemm_reference<double>(ta, tb, s.M, s.N, s.K, alpha, Ad.data(), lda, Bd.data(), ldb, beta, Cd.data(), ldc);
  if (garbage_c) std::fill(Ca.begin(), Ca.end(), 0.0);
  gemm_reference<double>(ta, tb, s.M, s.N, s.K, std::abs(alpha), Aa.data(), lda, Ba.data(), ldb, std::abs(beta),
                         Ca.data(), ldc);
  for (int i = 0; i < s.M; ++i)
    for (int j = 0; j < ldc; ++j) {
      const std::size_t idx = static_cast<std::size_t>(i) * ldc + j;
      if (j >= s.N) {
        REQUIRE(std::memcmp(&C[idx], &C0[idx], sizeof(T)) == 0);  // padding untouched
      } else {
        INFO("element " << i << "," << j << " alpha " << alpha << " beta " << beta);
        REQUIRE(std::abs(static_cast<double>(C[idx]) - Cd[idx]) <= (s.K + 2) * unit_roundoff<T>() * Ca[idx]);
      }
    }
}

const Shape kShapes[] = {{5, 7, 3}, {1, 1, 1}, {17, 33, 65}, {64, 32, 16}, {130, 97, 257}, {3, 300, 2}, {40, 20, 0}};

template <class T>
void check_backend(GemmBackend backend) {
  for (const Shape& s : kShapes)
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes}) {
        INFO("M " << s.M << " N " << s.N << " K " << s.K << " ta " << (ta == Trans::yes) << " tb "
                  << (tb == Trans::yes));
        check_gemm<T>(backend, s, ta, tb, T(0.7), T(0), false);
        check_gemm<T>(backend, s, ta, tb, T(0.7), T(0), true);
        check_gemm<T>(backend, s, ta, tb, T(-1.3), T(0.4), false);
        check_gemm<T>(backend, s, ta, tb, T(1), T(1), false);
      }
}

}  // namespace

TEST_CASE("gemm equals gemm_reference, every shape, transpose and alpha/beta form (double)", "[gemm]") {
  check_backend<double>(GemmBackend::openblas);
}

TEST_CASE("sgemm on OpenBLAS equals gemm_reference, every shape, transpose and alpha/beta form", "[gemm]") {
  check_backend<float>(GemmBackend::openblas);
}

TEST_CASE("sgemm on oneDNN equals gemm_reference, every shape, transpose and alpha/beta form", "[gemm]") {
  check_backend<float>(GemmBackend::onednn);
}

TEST_CASE("sgemm on libxsmm equals gemm_reference, every shape, transpose and alpha/beta form", "[gemm]") {
  check_backend<float>(GemmBackend::libxsmm);
}

namespace {

// The per-chunk products of the chunked mixers (chunk 64, head dim 16 or 32; delta rule and GLA),
// with the transpositions they are issued with: the ones the libxsmm backend exists for.
struct ChunkProduct {
  Trans ta, tb;
  Shape s;
};
const ChunkProduct kChunkProducts[] = {
    {Trans::no, Trans::yes, {64, 64, 32}},  // K K^T, Q K^T
    {Trans::no, Trans::no, {64, 32, 32}},   // Kb S
    {Trans::no, Trans::no, {64, 32, 64}},   // A rhs
    {Trans::yes, Trans::no, {32, 32, 64}},  // Kd^T U
    {Trans::yes, Trans::no, {64, 32, 64}},  // A^T dU
    {Trans::no, Trans::yes, {64, 32, 32}},  // U dH^T
    {Trans::no, Trans::yes, {32, 64, 32}},  // dO U^T
    {Trans::no, Trans::yes, {64, 64, 16}},  // GLA q k^T
    {Trans::yes, Trans::yes, {17, 9, 33}},  // both transposed (no model issues it; the contract holds)
};

}  // namespace

TEST_CASE("the libxsmm backend runs the per-chunk products on libxsmm, within the bound of the reference", "[gemm]") {
  // libxsmm_sgemm reports whether libxsmm ran the product: the fast path must not silently fall
  // back to oneDNN at the shapes it is for; above the size limit it must decline (C untouched).
  for (const ChunkProduct& p : kChunkProducts)
    for (const auto& [alpha, beta] : {std::pair{1.0f, 0.0f}, {1.0f, 1.0f}, {-1.0f, 1.0f}, {0.125f, 0.0f}}) {
      INFO("M " << p.s.M << " N " << p.s.N << " K " << p.s.K << " ta " << (p.ta == Trans::yes) << " tb "
                << (p.tb == Trans::yes) << " alpha " << alpha << " beta " << beta);
      const int lda = p.ta == Trans::no ? p.s.K : p.s.M, ldb = p.tb == Trans::no ? p.s.N : p.s.K;
      const auto A = expt::test::random_normal<float>(static_cast<std::size_t>(p.s.M) * p.s.K, 31);
      const auto B = expt::test::random_normal<float>(static_cast<std::size_t>(p.s.K) * p.s.N, 32);
      auto C = expt::test::random_normal<float>(static_cast<std::size_t>(p.s.M) * p.s.N, 33);
      std::vector<double> Cd(C.begin(), C.end());
      REQUIRE(expt::kernels::libxsmm_sgemm(p.ta, p.tb, p.s.M, p.s.N, p.s.K, alpha, A.data(), lda, B.data(), ldb, beta,
                                           C.data(), p.s.N));
      const std::vector<double> Ad(A.begin(), A.end()), Bd(B.begin(), B.end());
      std::vector<double> Ca(Cd.size());
      for (std::size_t i = 0; i < Cd.size(); ++i) Ca[i] = std::abs(Cd[i]);
      gemm_reference<double>(p.ta, p.tb, p.s.M, p.s.N, p.s.K, alpha, Ad.data(), lda, Bd.data(), ldb, beta, Cd.data(),
                             p.s.N);
      gemm_reference<double>(p.ta, p.tb, p.s.M, p.s.N, p.s.K, std::abs(alpha), absolute(Ad).data(), lda,
                             absolute(Bd).data(), ldb, std::abs(beta), Ca.data(), p.s.N);
      for (std::size_t i = 0; i < Cd.size(); ++i)
        REQUIRE(std::abs(static_cast<double>(C[i]) - Cd[i]) <= (p.s.K + 2) * unit_roundoff<float>() * Ca[i]);
    }
  std::vector<float> A(65 * 65, 1.0f), B(65 * 65, 1.0f), C(65 * 65, 2.0f);
  REQUIRE_FALSE(expt::kernels::libxsmm_sgemm(Trans::no, Trans::no, 65, 65, 65, 1.0f, A.data(), 65, B.data(), 65, 0.0f,
                                             C.data(), 65));
  REQUIRE(std::all_of(C.begin(), C.end(), [](float c) { return c == 2.0f; }));
}

TEST_CASE("libxsmm's small products give bit-identical results across calls and buffer offsets, every scalar form",
          "[gemm]") {
  // The scalar forms take different routes (direct kernel with beta 0 or 1, or kernel into scratch
  // then C = alpha T + beta C), and transposed B goes through a transposed copy: each must give
  // the same bits at every alignment, also after other shapes ran in between (the kernel cache).
  for (const ChunkProduct& p : kChunkProducts)
    for (const auto& [alpha, beta] : {std::pair{1.0f, 0.0f}, {1.0f, 1.0f}, {-1.0f, 1.0f}, {0.3f, -0.7f}}) {
      INFO("M " << p.s.M << " N " << p.s.N << " K " << p.s.K << " alpha " << alpha << " beta " << beta);
      const int lda = p.ta == Trans::no ? p.s.K : p.s.M, ldb = p.tb == Trans::no ? p.s.N : p.s.K;
      const std::size_t na = static_cast<std::size_t>(p.s.M) * p.s.K, nb = static_cast<std::size_t>(p.s.K) * p.s.N,
                        nc = static_cast<std::size_t>(p.s.M) * p.s.N;
      const auto A = expt::test::random_normal<float>(na, 41), B = expt::test::random_normal<float>(nb, 42),
                 C0 = expt::test::random_normal<float>(nc, 43);
      std::vector<float> first;
      for (int offset = 0; offset < 16; ++offset) {
        std::vector<float> a(na + offset), b(nb + offset), c(nc + offset);
        std::copy(A.begin(), A.end(), a.begin() + offset);
        std::copy(B.begin(), B.end(), b.begin() + offset);
        std::copy(C0.begin(), C0.end(), c.begin() + offset);
        expt::kernels::sgemm_on(GemmBackend::libxsmm, p.ta, p.tb, p.s.M, p.s.N, p.s.K, alpha, a.data() + offset, lda,
                                b.data() + offset, ldb, beta, c.data() + offset, p.s.N);
        std::vector<float> other(64 * 64, 0.5f);  // another shape between the repeats
        expt::kernels::sgemm_on(GemmBackend::libxsmm, Trans::no, Trans::no, 8, 8, 8, 1.0f, other.data(), 8,
                                other.data() + 64, 8, 0.0f, other.data() + 128, 8);
        std::vector<float> result(c.begin() + offset, c.end());
        if (first.empty())
          first = result;
        else
          REQUIRE(std::memcmp(first.data(), result.data(), nc * sizeof(float)) == 0);
      }
    }
}

TEST_CASE("libxsmm generates the CPU's kernels unless LIBXSMM_TARGET limits it", "[gemm]") {
  // ctest runs the [gemm] cases again with LIBXSMM_TARGET=hsw (libxsmm's AVX2 code generator).
  const char* target = std::getenv("LIBXSMM_TARGET");
  const std::string name = expt::kernels::libxsmm_target_name();
  if (target != nullptr && std::string(target) == "hsw")
    CHECK(name == "hsw");
  else if (expt::kernels::cpu_features().widest() == expt::kernels::VectorIsa::avx512)
    CHECK(name != "hsw");
  else if (expt::kernels::cpu_features().widest() == expt::kernels::VectorIsa::avx2)
    CHECK(name == "hsw");  // an AVX2-only CPU (AMD EPYC Zen 3): libxsmm's AVX2 generator
  else
    CHECK_FALSE(name.empty());
}

TEST_CASE("gemm_reference agrees with an independently written entry", "[gemm]") {
  const int M = 4, N = 5, K = 6;
  const auto A = expt::test::random_normal<double>(K * M, 11);  // stored K x M (transposed)
  const auto B = expt::test::random_normal<double>(K * N, 12);
  std::vector<double> C(M * N, 0.5);
  gemm_reference<double>(Trans::yes, Trans::no, M, N, K, 2.0, A.data(), M, B.data(), N, 3.0, C.data(), N);
  double expected = 0;
  for (int k = 0; k < K; ++k) expected += A[k * M + 1] * B[k * N + 2];
  REQUIRE(std::abs(C[1 * N + 2] - (2.0 * expected + 1.5)) <= 1e-14);
}

TEST_CASE("sgemm gives bit-identical results across repeated calls and buffer offsets, every backend", "[gemm]") {
  const Shape shapes[] = {{64, 32, 16}, {256, 128, 64}, {77, 129, 300}, {2048, 48, 40}};
  for (GemmBackend backend : kBackends)
    for (const Shape& s : shapes)
      for (Trans ta : {Trans::no, Trans::yes})
        for (Trans tb : {Trans::no, Trans::yes}) {
          INFO(expt::kernels::gemm_backend_name(backend) << " M " << s.M << " N " << s.N << " K " << s.K);
          const int lda = ta == Trans::no ? s.K : s.M, ldb = tb == Trans::no ? s.N : s.K;
          const std::size_t na = static_cast<std::size_t>(s.M) * s.K, nb = static_cast<std::size_t>(s.K) * s.N,
                            nc = static_cast<std::size_t>(s.M) * s.N;
          const auto A = expt::test::random_normal<float>(na, 21), B = expt::test::random_normal<float>(nb, 22),
                     C0 = expt::test::random_normal<float>(nc, 23);
          std::vector<float> first;
          // Offsets of 0..7 floats: every alignment modulo 32 bytes, in buffers allocated anew.
          for (int offset = 0; offset < 8; ++offset)
            for (int repeat = 0; repeat < 2; ++repeat) {
              std::vector<float> a(na + offset), b(nb + offset), c(nc + offset);
              std::copy(A.begin(), A.end(), a.begin() + offset);
              std::copy(B.begin(), B.end(), b.begin() + offset);
              std::copy(C0.begin(), C0.end(), c.begin() + offset);
              expt::kernels::sgemm_on(backend, ta, tb, s.M, s.N, s.K, 0.9f, a.data() + offset, lda, b.data() + offset,
                                      ldb, 1.0f, c.data() + offset, s.N);
              std::vector<float> result(c.begin() + offset, c.end());
              if (first.empty())
                first = result;
              else
                REQUIRE(std::memcmp(first.data(), result.data(), nc * sizeof(float)) == 0);
            }
        }
}

namespace {

// syrk (both forms) equals gemm_reference(op(A), op(A)^T) on the upper triangle and leaves the
// strict lower triangle untouched; symm equals gemm_reference with the full symmetric matrix while
// its lower triangle holds garbage (so it must read only the upper one). n = 300 exercises the
// oneDNN path's row panels (blocks of 128) and a partial last block.
template <class T>
void check_symmetric_products(GemmBackend backend, int n, int k, int m) {
  std::mt19937 gen(7 + n);
  std::normal_distribution<double> dist;
  auto fill = [&](std::vector<T>& v) {
    for (T& x : v) x = static_cast<T>(dist(gen));
  };
  for (bool trans : {false, true}) {
    INFO("syrk trans " << trans << " n " << n << " k " << k);
    // A is n x k (row stride k + 3), or k x n (row stride n + 3) when transposed.
    const int lda = trans ? n + 3 : k + 3;
    std::vector<T> A(static_cast<std::size_t>(trans ? k : n) * lda), C(static_cast<std::size_t>(n) * n);
    fill(A);
    fill(C);
    const std::vector<T> C0 = C;
    if constexpr (std::is_same_v<T, float>)
      expt::kernels::ssyrk_upper_on(backend, trans, n, k, T(0.8), A.data(), lda, T(-0.5), C.data(), n);
    else if (trans)
      expt::kernels::syrk_upper_trans<T>(n, k, T(0.8), A.data(), lda, T(-0.5), C.data(), n);
    else
      expt::kernels::syrk_upper<T>(n, k, T(0.8), A.data(), lda, T(-0.5), C.data(), n);
    std::vector<double> Ad(A.begin(), A.end()), Cd(C0.begin(), C0.end());
    std::vector<double> Aa = absolute(Ad), Ca = absolute(Cd);
    gemm_reference<double>(trans ? Trans::yes : Trans::no, trans ? Trans::no : Trans::yes, n, n, k, 0.8, Ad.data(), lda,
                           Ad.data(), lda, -0.5, Cd.data(), n);
    gemm_reference<double>(trans ? Trans::yes : Trans::no, trans ? Trans::no : Trans::yes, n, n, k, 0.8, Aa.data(), lda,
                           Aa.data(), lda, 0.5, Ca.data(), n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const std::size_t e = static_cast<std::size_t>(i) * n + j;
        INFO("syrk " << i << "," << j);
        if (j >= i)
          REQUIRE(std::abs(static_cast<double>(C[e]) - Cd[e]) <= (k + 2) * unit_roundoff<T>() * Ca[e]);
        else
          REQUIRE(C[e] == C0[e]);
      }
  }

  std::vector<T> S(static_cast<std::size_t>(m) * (m + 2)), B(static_cast<std::size_t>(m) * n),
      D(static_cast<std::size_t>(m) * n);
  fill(S);
  fill(B);
  fill(D);
  std::vector<double> S_full(static_cast<std::size_t>(m) * m);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j)
      S_full[static_cast<std::size_t>(i) * m + j] =
          S[static_cast<std::size_t>(std::min(i, j)) * (m + 2) + std::max(i, j)];
  std::vector<double> Bd(B.begin(), B.end()), Dd(D.begin(), D.end());
  std::vector<double> Sa = absolute(S_full), Ba = absolute(Bd), Da = absolute(Dd);
  gemm_reference<double>(Trans::no, Trans::no, m, n, m, 1.1, Sa.data(), m, Ba.data(), n, 0.3, Da.data(),
                         n);  // |S||B| + |D|
  if constexpr (std::is_same_v<T, float>)
    expt::kernels::ssymm_upper_left_on(backend, m, n, T(1.1), S.data(), m + 2, B.data(), n, T(0.3), D.data(), n);
  else
    expt::kernels::symm_upper_left<T>(m, n, T(1.1), S.data(), m + 2, B.data(), n, T(0.3), D.data(), n);
  gemm_reference<double>(Trans::no, Trans::no, m, n, m, 1.1, S_full.data(), m, Bd.data(), n, 0.3, Dd.data(), n);
  for (std::size_t e = 0; e < D.size(); ++e) {
    INFO("symm element " << e);
    REQUIRE(std::abs(static_cast<double>(D[e]) - Dd[e]) <= (m + 2) * unit_roundoff<T>() * Da[e]);
  }
}

}  // namespace

TEST_CASE("syrk_upper, syrk_upper_trans and symm_upper_left equal the general reference product (double)", "[gemm]") {
  check_symmetric_products<double>(GemmBackend::openblas, 37, 53, 29);
  check_symmetric_products<double>(GemmBackend::openblas, 300, 41, 150);
}

TEST_CASE("ssyrk and ssymm equal the general reference product on every backend", "[gemm]") {
  for (GemmBackend backend : kBackends) {
    INFO(expt::kernels::gemm_backend_name(backend));
    check_symmetric_products<float>(backend, 37, 53, 29);
    check_symmetric_products<float>(backend, 300, 41, 150);
    check_symmetric_products<float>(backend, 128, 7, 129);
  }
}

TEST_CASE("mirror_upper copies the upper triangle onto the lower one exactly, whole and partial tiles", "[gemm]") {
  for (int n : {1, 31, 32, 33, 70}) {
    INFO("n = " << n);
    std::vector<double> A(static_cast<std::size_t>(n) * n);
    for (std::size_t e = 0; e < A.size(); ++e) A[e] = 0.5 + static_cast<double>(e);  // all distinct
    const std::vector<double> before = A;
    expt::kernels::mirror_upper(A.data(), n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        const std::size_t e = static_cast<std::size_t>(i) * n + j;
        REQUIRE(A[e] == (j >= i ? before[e] : before[static_cast<std::size_t>(j) * n + i]));
      }
  }
}

TEST_CASE("the float front end follows the selected backend bit for bit", "[gemm]") {
  const int M = 33, N = 65, K = 129;
  const auto A = expt::test::random_normal<float>(M * K, 31), B = expt::test::random_normal<float>(K * N, 32);
  const GemmBackend before = expt::kernels::gemm_backend();
  for (GemmBackend backend : kBackends) {
    std::vector<float> via_front(M * N), direct(M * N);
    expt::kernels::set_gemm_backend(backend);
    expt::kernels::gemm<float>(Trans::no, Trans::yes, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, via_front.data(),
                               N);
    expt::kernels::sgemm_on(backend, Trans::no, Trans::yes, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f,
                            direct.data(), N);
    REQUIRE(std::memcmp(via_front.data(), direct.data(), direct.size() * sizeof(float)) == 0);
  }
  expt::kernels::set_gemm_backend(before);
}

namespace {

expt::kernels::CpuFeatures fake_cpu(std::vector<std::string> isa, std::string vendor = "GenuineIntel", int family = 6) {
  expt::kernels::CpuFeatures cpu;
  cpu.model = "Test CPU 9000";
  cpu.vendor = std::move(vendor);
  cpu.family = family;
  cpu.isa = std::move(isa);
  return cpu;
}

}  // namespace

TEST_CASE(
    "the default backend's syrk runs where it is faster: OpenBLAS on 256-bit cores with AVX2+ kernels, else oneDNN",
    "[gemm]") {
  using expt::kernels::prefer_openblas_syrk;
  using expt::kernels::VectorIsa;
  const auto zen3 = fake_cpu({"sse2", "avx", "fma", "avx2"}, "AuthenticAMD", 0x19);
  const auto zen4 = fake_cpu({"sse2", "avx", "fma", "avx2", "avx512f", "avx512bw"}, "AuthenticAMD", 0x19);
  const auto zen5 = fake_cpu({"sse2", "avx", "fma", "avx2", "avx512f", "avx512bw"}, "AuthenticAMD", 0x1A);
  const auto xeon = fake_cpu({"sse2", "avx", "fma", "avx2", "avx512f", "avx512bw"}, "GenuineIntel", 6);
  const auto sandy = fake_cpu({"sse2", "avx"}, "GenuineIntel", 6);
  CHECK(prefer_openblas_syrk(zen3, VectorIsa::avx2));          // OpenBLAS Zen/Haswell: 1.2-1.5x oneDNN's panels
  CHECK(prefer_openblas_syrk(zen4, VectorIsa::avx512));        // OpenBLAS Cooperlake: 1.25-1.28x there
  CHECK(prefer_openblas_syrk(zen4, VectorIsa::avx2));          // Haswell kernels run at full rate on halves
  CHECK_FALSE(prefer_openblas_syrk(zen5, VectorIsa::avx512));  // oneDNN's panels 1.4x there
  CHECK_FALSE(prefer_openblas_syrk(xeon, VectorIsa::avx512));
  CHECK_FALSE(prefer_openblas_syrk(xeon, VectorIsa::avx2));
  CHECK_FALSE(prefer_openblas_syrk(zen3, VectorIsa::sse));  // OpenBLAS fell back to an old core
  CHECK_FALSE(prefer_openblas_syrk(zen4, VectorIsa::avx));
  CHECK_FALSE(prefer_openblas_syrk(zen3, std::nullopt));  // a core the table does not know
  CHECK_FALSE(prefer_openblas_syrk(sandy, VectorIsa::avx));

  // The front end follows the choice for this machine bit for bit, and a forced backend its own.
  const int n = 70, k = 131;
  const auto A = expt::test::random_normal<float>(n * k, 41);
  const GemmBackend before = expt::kernels::gemm_backend();
  for (GemmBackend backend : kBackends) {
    expt::kernels::set_gemm_backend(backend);
    const GemmBackend expected =
        backend == GemmBackend::libxsmm && expt::kernels::syrk_on_openblas() ? GemmBackend::openblas : backend;
    for (bool trans : {false, true}) {
      std::vector<float> via_front(n * n, 0.5f), direct(n * n, 0.5f);
      if (trans)
        expt::kernels::syrk_upper_trans<float>(n, k / 2, 0.7f, A.data(), n, 1.0f, via_front.data(), n);
      else
        expt::kernels::syrk_upper<float>(n, k, 0.7f, A.data(), k, 1.0f, via_front.data(), n);
      expt::kernels::ssyrk_upper_on(expected, trans, n, trans ? k / 2 : k, 0.7f, A.data(), trans ? n : k, 1.0f,
                                    direct.data(), n);
      REQUIRE(std::memcmp(via_front.data(), direct.data(), direct.size() * sizeof(float)) == 0);
    }
  }
  expt::kernels::set_gemm_backend(before);
}

TEST_CASE("backend names parse, and an unknown one is refused with the accepted values", "[gemm]") {
  using expt::kernels::parse_gemm_backend;
  REQUIRE(parse_gemm_backend("onednn") == GemmBackend::onednn);
  REQUIRE(parse_gemm_backend("openblas") == GemmBackend::openblas);
  REQUIRE(parse_gemm_backend("libxsmm") == GemmBackend::libxsmm);
  REQUIRE_THROWS_WITH(parse_gemm_backend("mkl"), Catch::Contains("expected onednn or openblas"));
}

TEST_CASE("BLAS accounting counts every call's flops while on, nothing while off", "[gemm]") {
  std::vector<float> a(6 * 5, 0.5f), b(5 * 4, 0.25f), c(6 * 6, 0.0f);
  const auto before = expt::kernels::blas_totals();
  expt::kernels::gemm<float>(Trans::no, Trans::no, 6, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, c.data(), 4);
  const auto off = expt::kernels::blas_totals();
  CHECK(off.calls == before.calls);
  CHECK(off.flops == before.flops);

  expt::kernels::set_blas_accounting(true);
  for (GemmBackend backend : kBackends) {
    expt::kernels::sgemm_on(backend, Trans::no, Trans::no, 6, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, c.data(), 4);
    expt::kernels::ssyrk_upper_on(backend, false, 6, 5, 1.0f, a.data(), 5, 0.0f, c.data(), 6);
    expt::kernels::ssymm_upper_left_on(backend, 6, 1, 1.0f, c.data(), 6, a.data(), 5, 0.0f, b.data(), 4);
    expt::kernels::sgemm_on(backend, Trans::no, Trans::no, 0, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, c.data(), 4);
  }
  expt::kernels::set_blas_accounting(false);
  const auto on = expt::kernels::blas_totals();
  // Three calls per backend: the empty products make no call; syrk on oneDNN counts once.
  constexpr int backends = static_cast<int>(std::size(kBackends));
  CHECK(on.calls - off.calls == 3 * backends);
  CHECK(on.flops - off.flops == backends * (2.0 * 6 * 4 * 5 + 6.0 * 7 * 5 + 2.0 * 6 * 6 * 1));
  CHECK(on.seconds >= off.seconds);
}

TEST_CASE("BLAS accounting per product keys each call by routine, transpositions, sizes, alpha and beta", "[gemm]") {
  using expt::kernels::BlasProduct;
  using expt::kernels::BlasRoutine;
  std::vector<float> a(8 * 8, 0.5f), b(8 * 8, 0.25f), c(8 * 8, 0.0f);
  std::vector<double> ad(8 * 8, 0.5), bd(8 * 8, 0.25), cd(8 * 8, 0.0);
  const auto row = [](const BlasProduct& p) {
    for (const auto& r : expt::kernels::blas_product_totals())
      if (r.product == p) return r.totals;
    return expt::kernels::BlasTotals{};
  };
  const BlasProduct nt_scaled{BlasRoutine::sgemm, Trans::no, Trans::yes, 6, 4, 5, true, false};
  const BlasProduct nn_accumulating{BlasRoutine::sgemm, Trans::no, Trans::no, 6, 4, 5, false, true};
  const BlasProduct syrk{BlasRoutine::ssyrk, Trans::yes, Trans::no, 6, 6, 5, false, false};
  const BlasProduct dgemm{BlasRoutine::dgemm, Trans::yes, Trans::no, 3, 7, 2, false, false};
  const auto nt0 = row(nt_scaled), nn0 = row(nn_accumulating), syrk0 = row(syrk), d0 = row(dgemm);
  const auto totals0 = expt::kernels::blas_totals();
  const auto run = [&] {
    for (int i = 0; i < 3; ++i)
      expt::kernels::gemm<float>(Trans::no, Trans::yes, 6, 4, 5, 2.0f, a.data(), 5, b.data(), 5, 0.0f, c.data(), 4);
    for (int i = 0; i < 2; ++i)
      expt::kernels::gemm<float>(Trans::no, Trans::no, 6, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 1.0f, c.data(), 4);
    expt::kernels::syrk_upper_trans<float>(6, 5, 1.0f, a.data(), 6, 0.0f, c.data(), 6);
    expt::kernels::gemm<double>(Trans::yes, Trans::no, 3, 7, 2, 1.0, ad.data(), 3, bd.data(), 7, 0.0, cd.data(), 7);
  };
  // Per product needs the totals on too; either alone adds no row.
  expt::kernels::set_blas_product_accounting(true);
  run();
  expt::kernels::set_blas_product_accounting(false);
  expt::kernels::set_blas_accounting(true);
  run();
  CHECK(row(nt_scaled).calls == nt0.calls);
  expt::kernels::set_blas_product_accounting(true);
  run();
  expt::kernels::set_blas_product_accounting(false);
  expt::kernels::set_blas_accounting(false);
  const auto totals = expt::kernels::blas_totals();

  CHECK(row(nt_scaled).calls - nt0.calls == 3);
  CHECK(row(nt_scaled).flops - nt0.flops == 3 * 2.0 * 6 * 4 * 5);
  CHECK(row(nn_accumulating).calls - nn0.calls == 2);
  CHECK(row(syrk).calls - syrk0.calls == 1);
  CHECK(row(syrk).flops - syrk0.flops == 6.0 * 7 * 5);
  CHECK(row(dgemm).calls - d0.calls == 1);
  CHECK(row(dgemm).seconds >= d0.seconds);
  // Two accounted runs of 7 calls each; the rows hold the second only.
  CHECK(totals.calls - totals0.calls == 14);
  CHECK(expt::kernels::describe(nt_scaled) == "sgemm NT 6x4x5 alpha");
  CHECK(expt::kernels::describe(nn_accumulating) == "sgemm NN 6x4x5 +C");
  CHECK(expt::kernels::describe(syrk) == "ssyrk T 6x6x5");
  CHECK(expt::kernels::describe(BlasProduct{BlasRoutine::ssymm, Trans::no, Trans::no, 4, 9, 4, true, true}) ==
        "ssymm 4x9x4 alpha +C");
  // The most time first.
  const auto rows = expt::kernels::blas_product_totals();
  for (std::size_t i = 1; i < rows.size(); ++i) CHECK(rows[i - 1].totals.seconds >= rows[i].totals.seconds);
}

TEST_CASE("the datapath width: AVX-512 whole, except AMD family 19h (Zen 4) in 256-bit halves", "[gemm]") {
  const std::vector<std::string> avx512 = {"sse2", "avx", "fma", "avx2", "avx512f", "avx512bw"};
  CHECK(fake_cpu(avx512, "AuthenticAMD", 0x19).datapath_bits() == 256);  // Zen 4
  CHECK(fake_cpu(avx512, "AuthenticAMD", 0x1A).datapath_bits() == 512);  // Zen 5
  CHECK(fake_cpu(avx512, "GenuineIntel", 6).datapath_bits() == 512);
  CHECK(fake_cpu({"sse2", "avx", "fma", "avx2"}, "AuthenticAMD", 0x19).datapath_bits() == 256);  // Zen 3
  CHECK(fake_cpu({"sse2", "avx"}).datapath_bits() == 256);
  CHECK(fake_cpu({"sse2", "sse4_2"}).datapath_bits() == 128);
  // This machine: cpuid's vendor and family were read.
  const auto& cpu = expt::kernels::cpu_features();
  CHECK(cpu.vendor.size() == 12);  // "AuthenticAMD", "GenuineIntel", ...
  CHECK(cpu.family >= 6);
}

TEST_CASE("the forward product reads W^T only with oneDNN's AVX-512 kernels on 256-bit halves", "[gemm]") {
  using expt::kernels::prefer_transposed_forward_weight;
  using expt::kernels::VectorIsa;
  const std::vector<std::string> avx512 = {"sse2", "avx", "fma", "avx2", "avx512f", "avx512bw"};
  const auto zen4 = fake_cpu(avx512, "AuthenticAMD", 0x19);
  CHECK(prefer_transposed_forward_weight(true, VectorIsa::avx512, zen4));
  CHECK_FALSE(prefer_transposed_forward_weight(false, VectorIsa::avx512, zen4));  // forced openblas
  CHECK_FALSE(prefer_transposed_forward_weight(true, VectorIsa::avx2, zen4));     // DNNL_MAX_CPU_ISA=AVX2
  CHECK_FALSE(prefer_transposed_forward_weight(true, VectorIsa::avx512, fake_cpu(avx512, "AuthenticAMD", 0x1A)));
  CHECK_FALSE(prefer_transposed_forward_weight(true, VectorIsa::avx512, fake_cpu(avx512)));
  CHECK_FALSE(prefer_transposed_forward_weight(true, VectorIsa::avx2,
                                               fake_cpu({"sse2", "avx", "fma", "avx2"}, "AuthenticAMD", 0x19)));
  // This process: the rule on this CPU and backend, and never under a forced openblas.
  const auto before = expt::kernels::gemm_backend();
  expt::kernels::set_gemm_backend(expt::kernels::GemmBackend::openblas);
  CHECK_FALSE(expt::kernels::forward_reads_transposed_weight());
  expt::kernels::set_gemm_backend(expt::kernels::GemmBackend::onednn);
  CHECK(expt::kernels::forward_reads_transposed_weight() ==
        prefer_transposed_forward_weight(true, expt::kernels::onednn_isa(), expt::kernels::cpu_features()));
  expt::kernels::set_gemm_backend(before);
}

TEST_CASE("the start-up GEMM check warns when the kernels are narrower than the CPU, with the factor and the fix",
          "[gemm]") {
  using expt::kernels::gemm_mismatch_warning;
  using expt::kernels::openblas_core_isa;
  using expt::kernels::VectorIsa;
  const auto avx512 = fake_cpu({"sse2", "sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw"});
  const auto avx2 = fake_cpu({"sse2", "sse4_2", "avx", "fma", "avx2"});
  REQUIRE(avx512.widest() == VectorIsa::avx512);
  REQUIRE(avx2.widest() == VectorIsa::avx2);
  REQUIRE(fake_cpu({"sse2", "avx", "avx2"}).widest() == VectorIsa::avx);  // AVX2 without FMA

  // OpenBLAS's oldest core on an AVX-512 processor: 8x, named, with the fix.
  const auto prescott = gemm_mismatch_warning("openblas", "Prescott", openblas_core_isa("Prescott"), avx512);
  REQUIRE(prescott.has_value());
  CHECK_THAT(*prescott, Catch::Contains("'Prescott'") && Catch::Contains("(sse)") && Catch::Contains("avx512") &&
                            Catch::Contains("Test CPU 9000") && Catch::Contains("up to 8x") &&
                            Catch::Contains("onednn"));
  const auto haswell = gemm_mismatch_warning("openblas", "Haswell", openblas_core_isa("Haswell"), avx512);
  REQUIRE(haswell.has_value());
  CHECK_THAT(*haswell, Catch::Contains("up to 2x"));
  // On Zen 4's 256-bit halves AVX2 kernels reach the AVX-512 rate: silent; SSE ones 4x, not 8x.
  auto zen4 = avx512;
  zen4.vendor = "AuthenticAMD";
  zen4.family = 0x19;
  CHECK_FALSE(gemm_mismatch_warning("openblas", "Haswell", openblas_core_isa("Haswell"), zen4).has_value());
  const auto zen4_prescott = gemm_mismatch_warning("openblas", "Prescott", openblas_core_isa("Prescott"), zen4);
  REQUIRE(zen4_prescott.has_value());
  CHECK_THAT(*zen4_prescott, Catch::Contains("up to 4x"));
  // Matching kernels: silent.
  CHECK_FALSE(gemm_mismatch_warning("openblas", "Haswell", openblas_core_isa("Haswell"), avx2).has_value());
  CHECK_FALSE(gemm_mismatch_warning("openblas", "SkylakeX", openblas_core_isa("SkylakeX"), avx512).has_value());
  CHECK_FALSE(gemm_mismatch_warning("openblas", "Zen", openblas_core_isa("zen"), avx2).has_value());
  CHECK_FALSE(gemm_mismatch_warning("onednn", "avx512_core_bf16", VectorIsa::avx512, avx512).has_value());
  // oneDNN limited below the CPU (DNNL_MAX_CPU_ISA): warned, with the oneDNN-side fix.
  const auto limited = gemm_mismatch_warning("onednn", "avx2", VectorIsa::avx2, avx512);
  REQUIRE(limited.has_value());
  CHECK_THAT(*limited, Catch::Contains("up to 2x") && Catch::Contains("DNNL_MAX_CPU_ISA"));
  // A core name the table does not know: its speed is unchecked, said so.
  REQUIRE_FALSE(openblas_core_isa("Zen5").has_value());
  const auto unknown = gemm_mismatch_warning("openblas", "Zen5", std::nullopt, avx512);
  REQUIRE(unknown.has_value());
  CHECK_THAT(*unknown, Catch::Contains("unchecked") && Catch::Contains("expt bench"));
}

TEST_CASE("this machine's CPU features are consistent with what the compiler was told", "[gemm]") {
  const auto& cpu = expt::kernels::cpu_features();
  CHECK_FALSE(cpu.model.empty());
  CHECK(cpu.has("sse2"));  // every x86-64
#if defined(__AVX2__)
  CHECK(cpu.has("avx2"));  // the release preset builds with -march=native
#endif
#if defined(__AVX512F__)
  CHECK(cpu.has("avx512f"));
  CHECK(cpu.widest() == expt::kernels::VectorIsa::avx512);
#endif
  CHECK_THAT(expt::kernels::gemm_machine_summary(), Catch::Contains(cpu.model));
}

TEST_CASE("oneDNN runs the CPU's widest kernels unless DNNL_MAX_CPU_ISA limits it", "[gemm]") {
  // ctest runs the [gemm] cases twice: as they are, and with DNNL_MAX_CPU_ISA=AVX2 (the AVX2
  // kernels every x86 server since 2013 has, tested on AVX-512 machines too).
  const char* limit = std::getenv("DNNL_MAX_CPU_ISA");
  const auto widest = expt::kernels::cpu_features().widest();
  if (limit != nullptr && std::string(limit) == "AVX2")
    CHECK(expt::kernels::onednn_isa() == std::min(widest, expt::kernels::VectorIsa::avx2));
  else
    CHECK(expt::kernels::onednn_isa() == widest);
}
