// GEMM front end: C = alpha * op(A) * op(B) + beta * C on row-major raw pointers, plus the two
// symmetric products Muon's Gram Newton-Schulz and SOAP's statistics use. Every BLAS-level product
// of expt goes through here, so every layer is written once, templated on the scalar type.
//   op(A) is M x K, op(B) is K x N, C is M x N; lda/ldb/ldc are row strides.
//
// Backends (docs/decisions.md 88, 93). float products go to one of
//   libxsmm   small products (M N K <= 64^3 multiply-adds: the per-chunk products of the chunked
//             mixers) on libxsmm's JIT kernels, one generated per shape and cached per thread;
//             the rest, and any shape libxsmm has no kernel for, on oneDNN as below. The default.
//   onednn    oneDNN's dnnl_sgemm for every product: JIT kernels chosen at run time from the CPU's
//             instruction sets (AVX2, AVX-512, AMX), so a processor newer than the distribution
//             still runs at its vector width; a few microseconds of fixed cost per call.
//   openblas  OpenBLAS's cblas_sgemm: kernels chosen from a table of CPU models known to the
//             library's release (Debian 12: 0.3.21), or forced by OPENBLAS_CORETYPE.
// EXPT_GEMM_BACKEND=libxsmm|onednn|openblas forces one for the process (read once, at the first product);
// set_gemm_backend() does the same from code. double products (fp64 gradient checks, SOAP's
// double refresh) always go to OpenBLAS's dgemm/dsyrk/dsymm: oneDNN has no fp64 GEMM.
//
// Determinism: a backend gives the same bits for the same shapes, strides and scalars on the same
// machine, whatever the buffers' addresses (tests/kernels/gemm_test.cpp holds both backends to it),
// which resume and rank-count invariance rely on. Results differ between backends in the last bits
// (summation order), so a trial's backend is part of what reproduces it bit for bit.
// Threads: one per process by default (MPI ranks are the unit of parallelism); set_blas_threads
// sets OpenBLAS's and OpenMP's (oneDNN's) count alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace expt::kernels {

enum class Trans { no, yes };

enum class GemmBackend { openblas, onednn, libxsmm };
const char* gemm_backend_name(GemmBackend b);
// Parses "openblas" / "onednn" / "libxsmm"; throws std::invalid_argument naming the accepted values.
GemmBackend parse_gemm_backend(const std::string& name);
// The backend of float products in this process: EXPT_GEMM_BACKEND if set, else libxsmm.
GemmBackend gemm_backend();
void set_gemm_backend(GemmBackend b);

template <class T>
void gemm(Trans ta, Trans tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
          int ldc);

// Operand precision of the model's large products (train.precision, docs/decisions.md 123):
//   fp32  gemm<float> as above.
//   bf16  op(A) and op(B) rounded to bfloat16 (round to nearest even), products summed in fp32 by
//         oneDNN's bf16 matmul (AMX or AVX512-BF16 kernels), C = alpha op(A) op(B) + beta C in fp32.
enum class Precision { fp32, bf16 };
const char* precision_name(Precision p);
Precision parse_precision(const std::string& name);  // "fp32" / "bf16"; throws std::invalid_argument

// C = alpha op(A) op(B) + beta C with bf16 operands and fp32 accumulation, the contract of gemm.
// Each operand is converted into a per-thread contiguous bf16 scratch (its layout kept) and one
// oneDNN matmul primitive, created at the first call of a shape on a thread and cached, computes
// the product (beta = 1 as its sum post-op; other alpha/beta pairs through an fp32 scratch).
// Same bits for the same shapes and scalars whatever the buffers' addresses. Needs a CPU with
// avx512_bf16 or amx_bf16 (bf16_support_error, kernels/processor.hpp): oneDNN would otherwise
// fall back to a slow reference kernel.
void gemm_bf16(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc);
// gemm<float> (fp32) or gemm_bf16 (bf16).
void gemm_in(Precision p, Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
             int ldb, float beta, float* C, int ldc);
// x rounded to the nearest bfloat16 (ties to even), returned as the float of the same value; NaN
// stays NaN. The conversion gemm_bf16 applies to every operand element.
float round_to_bf16(float x);

// Plain triple loop with the same contract; the reference the tests hold gemm() equal to.
template <class T>
void gemm_reference(Trans ta, Trans tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
                    T* C, int ldc);

// Symmetric products, row-major, touching only the UPPER triangle of the symmetric matrix:
//   syrk_upper: C = alpha A A^T + beta C on the upper triangle of C (n x n); A is n x k, row stride lda.
//   syrk_upper_trans: C = alpha A^T A + beta C on the upper triangle of C (n x n); A is k x n.
//   symm_upper_left: C = alpha S B + beta C, S (m x m) symmetric read from its upper triangle,
//                    B and C m x n.
// On OpenBLAS these are ssyrk/ssymm (half the flops of the general product). oneDNN has neither:
// syrk runs as row panels of general products, [b, n - i] per block of b = 128 rows starting at
// row i, the diagonal b x b block into a scratch and only its upper triangle copied (about 58 % of
// the general product's flops at n = 768, at oneDNN's rate); symm mirrors S into a full m x m
// scratch and runs one general product. Scratch is per thread and grow-only.
template <class T>
void syrk_upper(int n, int k, T alpha, const T* A, int lda, T beta, T* C, int ldc);
template <class T>
void syrk_upper_trans(int n, int k, T alpha, const T* A, int lda, T beta, T* C, int ldc);
template <class T>
void symm_upper_left(int m, int n, T alpha, const T* S, int lds, const T* B, int ldb, T beta, T* C, int ldc);

// Lower triangle of the n x n row-major matrix A := the transpose of its upper triangle (what
// syrk_upper leaves undefined), by 32 x 32 tiles: tile (I, J) below the diagonal from tile (J, I)
// above it, so the strided side touches each cache line once per tile (a 768-wide matrix has rows
// 3 KiB apart). Copies values exactly.
template <class T>
void mirror_upper(T* A, int n);

// The float products on an explicit backend, whatever gemm_backend() is (tests and expt bench).
void sgemm_on(GemmBackend b, Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc);
void ssyrk_upper_on(GemmBackend b, bool trans, int n, int k, float alpha, const float* A, int lda, float beta, float* C,
                    int ldc);
void ssymm_upper_left_on(GemmBackend b, int m, int n, float alpha, const float* S, int lds, const float* B, int ldb,
                         float beta, float* C, int ldc);

// The products the libxsmm backend sends to libxsmm: M N K at most this many multiply-adds.
inline constexpr double kSmallProductMaxMultiplyAdds = 64.0 * 64.0 * 64.0;
// True when this product ran on libxsmm (a small shape libxsmm has a kernel for): C = alpha op(A)
// op(B) + beta C with the contract of gemm. False, C untouched, otherwise (the caller runs it
// elsewhere). Exposed for the tests and bench/gemm_backends; gemm() uses it on the libxsmm backend.
bool libxsmm_sgemm(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                   int ldb, float beta, float* C, int ldc);
// out [cols, rows] (row stride ld_out) = in^T for in [rows, cols] (row stride ld_in): libxsmm's
// transpose, several times faster than a plain loop at the chunk shapes. Copies values exactly.
template <class T>
void transpose(int rows, int cols, const T* in, int ld_in, T* out, int ld_out);
// libxsmm's code-generation target ("cpx", "skx", "hsw", ...; LIBXSMM_TARGET overrides it).
const char* libxsmm_target_name();

// Number of BLAS threads (1 by default: MPI ranks are the unit of parallelism).
void set_blas_threads(int n);

// Floating-point operations of one call of the products above, counting a multiply-add as 2:
// gemm 2MNK, syrk n(n+1)k (the upper triangle only), symm 2m²n. The useful flops, whatever a
// backend spends to produce them.
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

// Accounting per product (expt bench --blas-products): while this and the accounting above are
// both on, each call's flops and time also go to its product's row, keyed by what picks its kernel:
// the routine (element type included), the transpositions, the sizes, and whether it scales
// (alpha != 1) or accumulates (beta != 0). It tells which products of a step run below the
// machine's rate. Off (the default), a call costs one more relaxed atomic load; on, a mutex and a
// map lookup (process-wide rows, any thread).
enum class BlasRoutine { sgemm, dgemm, gemm_bf16, ssyrk, dsyrk, ssymm, dsymm };
struct BlasProduct {
  BlasRoutine routine = BlasRoutine::sgemm;
  Trans ta = Trans::no, tb = Trans::no;  // syrk: ta is its transposition; symm: both no
  int m = 0, n = 0, k = 0;               // gemm M x N x K; syrk n x n x k; symm m x n x m (S on the left)
  bool scaled = false;                   // alpha != 1
  bool accumulates = false;              // beta != 0
  auto operator<=>(const BlasProduct&) const = default;
};
// "sgemm NT 64x64x64", with " alpha" when scaled and " +C" when it accumulates.
std::string describe(const BlasProduct& product);
struct BlasProductTotals {
  BlasProduct product;
  BlasTotals totals;
};
void set_blas_product_accounting(bool on);
// Every product called while per-product accounting was on, the most time first.
std::vector<BlasProductTotals> blas_product_totals();

}  // namespace expt::kernels
