// GEMM front end: C = alpha * op(A) * op(B) + beta * C on row-major raw pointers.
// float goes to OpenBLAS sgemm, double to dgemm (used by the fp64 gradient checks), so every
// layer can be written once, templated on the scalar type.
//   op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides.
#pragma once

#include <cstdint>

namespace expt::kernels {

enum class Trans { no, yes };

template <class T>
void gemm(Trans ta, Trans tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
          int ldc);

// Plain triple loop with the same contract; the reference the tests hold gemm() equal to.
template <class T>
void gemm_reference(Trans ta, Trans tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                    T* C, int ldc);

// Symmetric products (ssyrk/ssymm, dsyrk/dsymm), row-major, touching only the UPPER triangle of the
// symmetric matrix (half the flops of the general product):
//   syrk_upper: C = alpha A A^T + beta C on the upper triangle of C (n x n); A is n x k, row stride lda.
//   syrk_upper_trans: C = alpha A^T A + beta C on the upper triangle of C (n x n); A is k x n.
//   symm_upper_left: C = alpha S B + beta C, S (m x m) symmetric read from its upper triangle,
//                    B and C m x n.
template <class T>
void syrk_upper(int n, int k, T alpha, const T* A, int lda, T beta, T* C, int ldc);
template <class T>
void syrk_upper_trans(int n, int k, T alpha, const T* A, int lda, T beta, T* C, int ldc);
template <class T>
void symm_upper_left(int m, int n, T alpha, const T* S, int lds, const T* B, int ldb, T beta, T* C, int ldc);

// Number of BLAS threads (1 by default: MPI ranks are the unit of parallelism).
void set_blas_threads(int n);

// Floating-point operations of one call of the products above, counting a multiply-add as 2:
// gemm 2MNK, syrk n(n+1)k (the upper triangle only), symm 2m²n.
double gemm_flops(int M, int N, int K);
double syrk_flops(int n, int k);
double symm_flops(int m, int n);

// Accounting of every call above, float and double (expt bench's BLAS figures: how much of a
// phase is in BLAS and at what rate). While enabled, each call adds its flops and its wall time to
// process-wide totals (relaxed atomics; any thread). Disabled (the default), a call costs one
// relaxed atomic load. Products that Eigen computes itself (SOAP's QR and eigensolver) are not
// BLAS calls and are not counted.
struct BlasTotals {
  std::int64_t calls = 0;
  double flops = 0;
  double seconds = 0;

  BlasTotals& operator+=(const BlasTotals& o) {
    calls += o.calls;
    flops += o.flops;
    seconds += o.seconds;
    return *this;
  }
  // The calls between two readings of blas_totals(): later - earlier.
  friend BlasTotals operator-(BlasTotals later, const BlasTotals& earlier) {
    return {later.calls - earlier.calls, later.flops - earlier.flops, later.seconds - earlier.seconds};
  }
};
void set_blas_accounting(bool on);
BlasTotals blas_totals();  // sums of the calls made while accounting was on

}  // namespace expt::kernels
