#include "kernels/gemm.hpp"

#include <cblas.h>

namespace expt::kernels {

namespace {
CBLAS_TRANSPOSE cblas(Trans t) { return t == Trans::yes ? CblasTrans : CblasNoTrans; }
}  // namespace

template <>
void gemm<float>(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, cblas(ta), cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(Trans ta, Trans tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                  int ldb, double beta, double* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, cblas(ta), cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void syrk_upper<float>(int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  if (n == 0) return;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper<double>(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  if (n == 0) return;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper_trans<float>(int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  if (n == 0) return;
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper_trans<double>(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  if (n == 0) return;
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void symm_upper_left<float>(int m, int n, float alpha, const float* S, int lds, const float* B, int ldb, float beta,
                            float* C, int ldc) {
  if (m == 0 || n == 0) return;
  cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, m, n, alpha, S, lds, B, ldb, beta, C, ldc);
}

template <>
void symm_upper_left<double>(int m, int n, double alpha, const double* S, int lds, const double* B, int ldb,
                             double beta, double* C, int ldc) {
  if (m == 0 || n == 0) return;
  cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, m, n, alpha, S, lds, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_reference(Trans ta, Trans tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                    T* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      T acc = 0;
      for (int k = 0; k < K; ++k) {
        const T a = ta == Trans::no ? A[i * lda + k] : A[k * lda + i];
        const T b = tb == Trans::no ? B[k * ldb + j] : B[j * ldb + k];
        acc += a * b;
      }
      C[i * ldc + j] = alpha * acc + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
}

template void gemm_reference<float>(Trans, Trans, int, int, int, float, const float*, int, const float*, int, float,
                                    float*, int);
template void gemm_reference<double>(Trans, Trans, int, int, int, double, const double*, int, const double*, int,
                                     double, double*, int);

void set_blas_threads(int n) { openblas_set_num_threads(n); }

}  // namespace expt::kernels
