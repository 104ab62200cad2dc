// GEMM front end: C = alpha * op(A) * op(B) + beta * C on row-major raw pointers.
// float goes to OpenBLAS sgemm, double to dgemm (used by the fp64 gradient checks), so every
// layer can be written once, templated on the scalar type.
//   op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides.
#pragma once

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

}  // namespace expt::kernels
