// kernels::gemm (BLAS) against kernels::gemm_reference (triple loop), all four transpose
// combinations, float and double, with row strides larger than the logical widths.
#include "kernels/gemm.hpp"

#include <catch2/catch.hpp>
#include <cmath>
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
