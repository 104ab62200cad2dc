// kernels::gemm (BLAS) against kernels::gemm_reference (triple loop), all four transpose
// combinations, float and double, with row strides larger than the logical widths; the symmetric
// products (syrk, symm) against the same reference.
#include "kernels/gemm.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "tests/kernels/gradient_check.hpp"

using expt::kernels::gemm;
using expt::kernels::gemm_reference;
using expt::kernels::Trans;

namespace {

template <class T>
void check_gemm(Trans ta, Trans tb, T alpha, T beta, double tol) {
  const int M = 5, N = 7, K = 3, pad = 2;
  // op(A) is M x K: stored K x M when transposed. Strides add `pad` unused columns.
  const int a_rows = ta == Trans::no ? M : K, a_cols = ta == Trans::no ? K : M;
  const int b_rows = tb == Trans::no ? K : N, b_cols = tb == Trans::no ? N : K;
  const int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
  const auto A = expt::test::random_normal<T>(static_cast<std::size_t>(a_rows) * lda, 1);
  const auto B = expt::test::random_normal<T>(static_cast<std::size_t>(b_rows) * ldb, 2);
  const auto C0 = expt::test::random_normal<T>(static_cast<std::size_t>(M) * ldc, 3);
  auto C_blas = C0, C_ref = C0;
  gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C_blas.data(), ldc);
  gemm_reference(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C_ref.data(), ldc);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < ldc; ++j) {
      const std::size_t idx = static_cast<std::size_t>(i) * ldc + j;
      if (j >= N) {
        REQUIRE(C_blas[idx] == C0[idx]);  // padding untouched
        REQUIRE(C_ref[idx] == C0[idx]);
      } else {
        REQUIRE(std::abs(static_cast<double>(C_blas[idx]) - static_cast<double>(C_ref[idx])) <= tol);
      }
    }
  // The reference itself against one independently written entry: C[1][2].
  double expected = 0;
  for (int k = 0; k < K; ++k) {
    const double a = ta == Trans::no ? A[1 * lda + k] : A[k * lda + 1];
    const double b = tb == Trans::no ? B[k * ldb + 2] : B[2 * ldb + k];
    expected += a * b;
  }
  expected = alpha * expected + beta * static_cast<double>(C0[1 * ldc + 2]);
  REQUIRE(std::abs(static_cast<double>(C_ref[1 * ldc + 2]) - expected) <= tol);
}

template <class T>
void check_all(double tol) {
  for (Trans ta : {Trans::no, Trans::yes})
    for (Trans tb : {Trans::no, Trans::yes}) {
      INFO("ta " << (ta == Trans::yes) << " tb " << (tb == Trans::yes));
      check_gemm<T>(ta, tb, T(0.7), T(0), tol);
      check_gemm<T>(ta, tb, T(-1.3), T(0.4), tol);
    }
}

}  // namespace

TEST_CASE("gemm equals gemm_reference for all transposes (double)", "[gemm]") { check_all<double>(1e-13); }

TEST_CASE("gemm equals gemm_reference for all transposes (float)", "[gemm]") { check_all<float>(1e-5); }

namespace {

// syrk_upper equals gemm_reference(A, A^T) on the upper triangle and leaves the strict lower
// triangle untouched; symm_upper_left equals gemm_reference with the full symmetric matrix while
// its lower triangle holds garbage (so it must read only the upper one).
template <class T>
void check_symmetric_products(double tol) {
  const int n = 37, k = 53, m = 29;
  std::mt19937 gen(7);
  std::normal_distribution<double> dist;
  auto fill = [&](std::vector<T>& v) {
    for (T& x : v) x = static_cast<T>(dist(gen));
  };
  std::vector<T> A(static_cast<std::size_t>(n) * (k + 3)), C(static_cast<std::size_t>(n) * n), C_ref;
  fill(A);
  fill(C);
  const std::vector<T> C0 = C;
  C_ref = C;
  expt::kernels::syrk_upper<T>(n, k, T(0.8), A.data(), k + 3, T(-0.5), C.data(), n);
  expt::kernels::gemm_reference<T>(Trans::no, Trans::yes, n, n, k, T(0.8), A.data(), k + 3, A.data(), k + 3, T(-0.5),
                                   C_ref.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const std::size_t e = static_cast<std::size_t>(i) * n + j;
      INFO("syrk " << i << "," << j);
      REQUIRE(std::abs(static_cast<double>(C[e]) - static_cast<double>(j >= i ? C_ref[e] : C0[e])) <= tol);
    }

  std::vector<T> S(static_cast<std::size_t>(n) * n), S_full(S.size()), B(static_cast<std::size_t>(n) * m),
      D(static_cast<std::size_t>(n) * m);
  fill(S);
  fill(B);
  fill(D);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      S_full[static_cast<std::size_t>(i) * n + j] = S[static_cast<std::size_t>(std::min(i, j)) * n + std::max(i, j)];
  std::vector<T> D_ref = D;
  expt::kernels::symm_upper_left<T>(n, m, T(1.1), S.data(), n, B.data(), m, T(0.3), D.data(), m);
  expt::kernels::gemm_reference<T>(Trans::no, Trans::no, n, m, n, T(1.1), S_full.data(), n, B.data(), m, T(0.3),
                                   D_ref.data(), m);
  for (std::size_t e = 0; e < D.size(); ++e) {
    INFO("symm element " << e);
    REQUIRE(std::abs(static_cast<double>(D[e]) - static_cast<double>(D_ref[e])) <= tol);
  }
}

}  // namespace

TEST_CASE("syrk_upper and symm_upper_left equal the general reference product (double)", "[gemm]") {
  check_symmetric_products<double>(1e-12);
}

TEST_CASE("syrk_upper and symm_upper_left equal the general reference product (float)", "[gemm]") {
  check_symmetric_products<float>(1e-4);
}

TEST_CASE("BLAS accounting counts every call's flops while on, nothing while off", "[gemm]") {
  using expt::kernels::Trans;
  std::vector<float> a(6 * 5, 0.5f), b(5 * 4, 0.25f), c(6 * 6, 0.0f);
  const auto before = expt::kernels::blas_totals();
  expt::kernels::gemm<float>(Trans::no, Trans::no, 6, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, c.data(), 4);
  const auto off = expt::kernels::blas_totals();
  CHECK(off.calls == before.calls);
  CHECK(off.flops == before.flops);

  expt::kernels::set_blas_accounting(true);
  expt::kernels::gemm<float>(Trans::no, Trans::no, 6, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, c.data(), 4);
  expt::kernels::syrk_upper<float>(6, 5, 1.0f, a.data(), 5, 0.0f, c.data(), 6);
  expt::kernels::symm_upper_left<float>(6, 1, 1.0f, c.data(), 6, a.data(), 5, 0.0f, b.data(), 4);
  expt::kernels::gemm<float>(Trans::no, Trans::no, 0, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, c.data(), 4);
  expt::kernels::set_blas_accounting(false);
  const auto on = expt::kernels::blas_totals();
  CHECK(on.calls - off.calls == 3);  // the empty product makes no BLAS call
  CHECK(on.flops - off.flops == 2.0 * 6 * 4 * 5 + 6.0 * 7 * 5 + 2.0 * 6 * 6 * 1);
  CHECK(on.seconds >= off.seconds);
}
