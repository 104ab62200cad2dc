#include "kernels/gemm.hpp"

#include <cblas.h>

#include <atomic>
#include <chrono>

namespace expt::kernels {

namespace {

CBLAS_TRANSPOSE cblas(Trans t) { return t == Trans::yes ? CblasTrans : CblasNoTrans; }

std::atomic<bool> accounting_on{false};
std::atomic<std::int64_t> accounted_calls{0};
std::atomic<std::int64_t> accounted_nanoseconds{0};
std::atomic<double> accounted_flops{0.0};

// Times one BLAS call from construction to destruction when accounting is on.
class AccountedCall {
 public:
  explicit AccountedCall(double flops)
      : on_(accounting_on.load(std::memory_order_relaxed)),
        flops_(flops),
        start_(on_ ? Clock::now() : Clock::time_point{}) {}
  ~AccountedCall() {
    if (!on_) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
    accounted_calls.fetch_add(1, std::memory_order_relaxed);
    accounted_nanoseconds.fetch_add(ns, std::memory_order_relaxed);
    accounted_flops.fetch_add(flops_, std::memory_order_relaxed);
  }
  AccountedCall(const AccountedCall&) = delete;
  AccountedCall& operator=(const AccountedCall&) = delete;

 private:
  using Clock = std::chrono::steady_clock;
  bool on_;
  double flops_;
  Clock::time_point start_;
};

}  // namespace

double gemm_flops(int M, int N, int K) { return 2.0 * M * static_cast<double>(N) * K; }
double syrk_flops(int n, int k) { return static_cast<double>(n) * (n + 1.0) * k; }
double symm_flops(int m, int n) { return 2.0 * m * static_cast<double>(m) * n; }

void set_blas_accounting(bool on) { accounting_on.store(on, std::memory_order_relaxed); }

BlasTotals blas_totals() {
  BlasTotals t;
  t.calls = accounted_calls.load(std::memory_order_relaxed);
  t.flops = accounted_flops.load(std::memory_order_relaxed);
  t.seconds = 1e-9 * static_cast<double>(accounted_nanoseconds.load(std::memory_order_relaxed));
  return t;
}

template <>
void gemm<float>(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  const AccountedCall account(gemm_flops(M, N, K));
  cblas_sgemm(CblasRowMajor, cblas(ta), cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(Trans ta, Trans tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                  int ldb, double beta, double* C, int ldc) {
  if (M == 0 || N == 0) return;
  const AccountedCall account(gemm_flops(M, N, K));
  cblas_dgemm(CblasRowMajor, cblas(ta), cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void syrk_upper<float>(int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper<double>(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k));
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper_trans<float>(int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper_trans<double>(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k));
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void symm_upper_left<float>(int m, int n, float alpha, const float* S, int lds, const float* B, int ldb, float beta,
                            float* C, int ldc) {
  if (m == 0 || n == 0) return;
  const AccountedCall account(symm_flops(m, n));
  cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, m, n, alpha, S, lds, B, ldb, beta, C, ldc);
}

template <>
void symm_upper_left<double>(int m, int n, double alpha, const double* S, int lds, const double* B, int ldb,
                             double beta, double* C, int ldc) {
  if (m == 0 || n == 0) return;
  const AccountedCall account(symm_flops(m, n));
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
