#include "kernels/gemm.hpp"

#include <cblas.h>
#include <immintrin.h>
#include <libxsmm.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/processor.hpp"

namespace expt::kernels {

namespace {

CBLAS_TRANSPOSE cblas(Trans t) { return t == Trans::yes ? CblasTrans : CblasNoTrans; }
char dnnl_trans(Trans t) { return t == Trans::yes ? 'T' : 'N'; }

// ---- accounting ----

std::atomic<bool> accounting_on{false};
std::atomic<std::int64_t> accounted_calls{0};
std::atomic<std::int64_t> accounted_nanoseconds{0};
std::atomic<double> accounted_flops{0.0};

std::atomic<bool> product_accounting_on{false};
std::mutex product_rows_mutex;
std::map<BlasProduct, BlasTotals> product_rows;  // guarded by product_rows_mutex

// Times one product from construction to destruction when accounting is on.
class AccountedCall {
 public:
  AccountedCall(double flops, const BlasProduct& product)
      : on_(accounting_on.load(std::memory_order_relaxed)),
        by_product_(on_ && product_accounting_on.load(std::memory_order_relaxed)),
        flops_(flops),
        product_(product),
        start_(on_ ? Clock::now() : Clock::time_point{}) {}
  ~AccountedCall() {
    if (!on_) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
    accounted_calls.fetch_add(1, std::memory_order_relaxed);
    accounted_nanoseconds.fetch_add(ns, std::memory_order_relaxed);
    accounted_flops.fetch_add(flops_, std::memory_order_relaxed);
    if (!by_product_) return;
    const std::lock_guard<std::mutex> lock(product_rows_mutex);
    product_rows[product_] += BlasTotals{1, flops_, 1e-9 * static_cast<double>(ns)};
  }
  AccountedCall(const AccountedCall&) = delete;
  AccountedCall& operator=(const AccountedCall&) = delete;

 private:
  using Clock = std::chrono::steady_clock;
  bool on_, by_product_;
  double flops_;
  BlasProduct product_;
  Clock::time_point start_;
};

// ---- backend and threads ----

constexpr int kUnresolved = -1;
std::atomic<int> backend_choice{kUnresolved};
std::atomic<int> blas_thread_count{1};

GemmBackend backend_from_environment() {
  const char* env = std::getenv("EXPT_GEMM_BACKEND");
  if (env == nullptr || *env == '\0') return GemmBackend::libxsmm;
  try {
    return parse_gemm_backend(env);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("EXPT_GEMM_BACKEND: ") + e.what());
  }
}

// OpenMP's thread count is per thread (the calling thread's ICV), so the thread that runs a
// oneDNN product sets it on its first call and whenever set_blas_threads changed it.
void align_openmp_threads() {
  const int want = blas_thread_count.load(std::memory_order_relaxed);
  if (omp_get_max_threads() != want) omp_set_num_threads(want);
}

// ---- oneDNN ----

void onednn_sgemm(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                  int ldb, float beta, float* C, int ldc) {
  if (K == 0) {  // BLAS semantics: C = beta C, and beta == 0 writes zeros whatever C held
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float& c = C[static_cast<std::size_t>(i) * ldc + j];
        c = beta == 0.0f ? 0.0f : beta * c;
      }
    return;
  }
  align_openmp_threads();
  const dnnl_status_t status = dnnl_sgemm(dnnl_trans(ta), dnnl_trans(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (status != dnnl_success)
    throw std::runtime_error("oneDNN dnnl_sgemm failed (status " + std::to_string(static_cast<int>(status)) +
                             ") for M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
}

// ---- libxsmm (small products) ----
//
// Row-major C [M, N] = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: libxsmm's m = N, n = M,
// its A operand is our B and its B operand our A, and a transposed A (row-major) is its TRANS_B.
// libxsmm 1.17 generates no kernel for its TRANS_A, our transposed B (the A B^T products: K K^T,
// Q K^T, dO U^T): B [N, K] is transposed into a per-thread scratch [K, N] first (libxsmm_otrans). Its kernels take
// alpha = 1 and beta = 0 or 1 only; any other pair runs the kernel with beta = 0 into a per-thread scratch [M, N] and
// applies C = alpha T + beta C in one pass. The kernel of a shape depends only on (m, n, k, strides, transposition,
// beta): the same shape gives the same bits whatever the buffers' addresses.

struct SmallKernelKey {
  int m, n, k, lda, ldb, ldc, flags;
  bool beta_one;
  bool operator==(const SmallKernelKey&) const = default;
};

struct SmallKernelKeyHash {
  std::size_t operator()(const SmallKernelKey& key) const {
    std::size_t h = 0;
    for (int v : {key.m, key.n, key.k, key.lda, key.ldb, key.ldc, key.flags, static_cast<int>(key.beta_one)})
      h = h * 1000003u ^ static_cast<std::size_t>(v);
    return h;
  }
};

void libxsmm_initialise_once() {
  static std::once_flag once;
  std::call_once(once, [] { libxsmm_init(); });
}

// The kernel of one column-major shape, nullptr when libxsmm has none. Generated at the first call
// of the shape on a thread and kept in that thread's table (libxsmm's own registry is shared and
// returns the same code to every thread): after the first call a lookup allocates nothing.
libxsmm_smmfunction small_kernel(const SmallKernelKey& key) {
  thread_local std::unordered_map<SmallKernelKey, libxsmm_smmfunction, SmallKernelKeyHash> kernels;
  const auto found = kernels.find(key);
  if (found != kernels.end()) return found->second;
  libxsmm_initialise_once();
  const libxsmm_blasint lda = key.lda, ldb = key.ldb, ldc = key.ldc;
  const float alpha = 1.0f, beta = key.beta_one ? 1.0f : 0.0f;
  const int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
  const libxsmm_smmfunction kernel =
      libxsmm_smmdispatch(key.m, key.n, key.k, &lda, &ldb, &ldc, &alpha, &beta, &key.flags, &prefetch);
  kernels.emplace(key, kernel);
  return kernel;
}

}  // namespace

bool libxsmm_sgemm(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                   int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0 || K <= 0 || static_cast<double>(M) * N * K > kSmallProductMaxMultiplyAdds) return false;
  const bool direct = alpha == 1.0f && (beta == 0.0f || beta == 1.0f);
  const SmallKernelKey key{N,
                           M,
                           K,
                           tb == Trans::yes ? N : ldb,
                           lda,
                           direct ? ldc : N,
                           ta == Trans::yes ? LIBXSMM_GEMM_FLAG_TRANS_B : 0,
                           direct && beta == 1.0f};
  const libxsmm_smmfunction kernel = small_kernel(key);
  if (kernel == nullptr) return false;
  thread_local std::vector<float> b_transposed, product;
  const float* b = B;
  if (tb == Trans::yes) {  // B is [N, K] with stride ldb; its transpose [K, N] with stride N
    if (b_transposed.size() < static_cast<std::size_t>(K) * N) b_transposed.resize(static_cast<std::size_t>(K) * N);
    transpose(N, K, B, ldb, b_transposed.data(), N);
    b = b_transposed.data();
  }
  if (direct) {
    kernel(b, A, C);
    return true;
  }
  if (product.size() < static_cast<std::size_t>(M) * N) product.resize(static_cast<std::size_t>(M) * N);
  kernel(b, A, product.data());
  for (int i = 0; i < M; ++i) {
    float* c = C + static_cast<std::size_t>(i) * ldc;
    const float* t = product.data() + static_cast<std::size_t>(i) * N;
    if (beta == 0.0f)
      for (int j = 0; j < N; ++j) c[j] = alpha * t[j];
    else
      for (int j = 0; j < N; ++j) c[j] = alpha * t[j] + beta * c[j];
  }
  return true;
}

template <class T>
void transpose(int rows, int cols, const T* in, int ld_in, T* out, int ld_out) {
  if (rows <= 0 || cols <= 0) return;
  libxsmm_initialise_once();
  // Column-major terms: in is a cols x rows matrix with stride ld_in, out its rows x cols transpose.
  libxsmm_otrans(out, in, sizeof(T), cols, rows, ld_in, ld_out);
}
template void transpose<float>(int, int, const float*, int, float*, int);
template void transpose<double>(int, int, const double*, int, double*, int);

const char* libxsmm_target_name() {
  libxsmm_initialise_once();
  return libxsmm_get_target_arch();
}

template <class T>
void mirror_upper(T* A, int n) {
  constexpr int tile = 32;
  for (int i0 = 0; i0 < n; i0 += tile)
    for (int j0 = 0; j0 <= i0; j0 += tile) {
      const int i1 = std::min(n, i0 + tile), j1 = std::min(n, j0 + tile);
      for (int i = i0; i < i1; ++i)
        for (int j = j0; j < std::min(j1, i); ++j)
          A[static_cast<std::size_t>(i) * n + j] = A[static_cast<std::size_t>(j) * n + i];
    }
}
template void mirror_upper<float>(float*, int);
template void mirror_upper<double>(double*, int);

namespace {

// Per-thread, grow-only scratch for the symmetric products on oneDNN.
float* scratch(std::vector<float>& buffer, std::size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// C = alpha op(A) op(A)^T + beta C on the upper triangle, op(A) = A (n x k) or A^T (A is k x n).
// Row blocks of b rows: the diagonal block into scratch (its upper triangle copied out), the
// panel right of it as one general product straight into C.
void onednn_syrk_upper(bool trans, int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  constexpr int b = 128;
  thread_local std::vector<float> diagonal;
  float* D = scratch(diagonal, static_cast<std::size_t>(b) * b);
  // Rows i.. of op(A): A's rows (no transpose) or A's columns (transposed).
  auto rows_from = [&](int i) { return trans ? A + i : A + static_cast<std::size_t>(i) * lda; };
  const Trans left = trans ? Trans::yes : Trans::no, right = trans ? Trans::no : Trans::yes;
  for (int i = 0; i < n; i += b) {
    const int bi = std::min(b, n - i);
    onednn_sgemm(left, right, bi, bi, k, alpha, rows_from(i), lda, rows_from(i), lda, 0.0f, D, bi);
    for (int r = 0; r < bi; ++r) {
      float* c_row = C + static_cast<std::size_t>(i + r) * ldc + i;
      const float* d_row = D + static_cast<std::size_t>(r) * bi;
      for (int c = r; c < bi; ++c) c_row[c] = beta == 0.0f ? d_row[c] : d_row[c] + beta * c_row[c];
    }
    const int rest = n - i - bi;
    if (rest > 0)
      onednn_sgemm(left, right, bi, rest, k, alpha, rows_from(i), lda, rows_from(i + bi), lda, beta,
                   C + static_cast<std::size_t>(i) * ldc + i + bi, ldc);
  }
}

// C = alpha S B + beta C with S read from its upper triangle: S mirrored into a full scratch F,
// then one general product. The upper triangle is copied row by row (contiguous), the lower one
// from it by tiles (mirror_upper): an element-by-element gather of S's columns cost 18 % of the
// product at m = n = 128 on Zen 4 (docs/performance.md).
void onednn_symm_upper_left(int m, int n, float alpha, const float* S, int lds, const float* B, int ldb, float beta,
                            float* C, int ldc) {
  thread_local std::vector<float> full;
  float* F = scratch(full, static_cast<std::size_t>(m) * m);
  for (int i = 0; i < m; ++i)
    std::copy(S + static_cast<std::size_t>(i) * lds + i, S + static_cast<std::size_t>(i) * lds + m,
              F + static_cast<std::size_t>(i) * m + i);
  mirror_upper(F, m);
  onednn_sgemm(Trans::no, Trans::no, m, n, m, alpha, F, m, B, ldb, beta, C, ldc);
}

}  // namespace

const char* gemm_backend_name(GemmBackend b) {
  switch (b) {
    case GemmBackend::libxsmm:
      return "libxsmm";
    case GemmBackend::onednn:
      return "onednn";
    case GemmBackend::openblas:
      return "openblas";
  }
  return "unknown";
}

GemmBackend parse_gemm_backend(const std::string& name) {
  if (name == "libxsmm") return GemmBackend::libxsmm;
  if (name == "onednn") return GemmBackend::onednn;
  if (name == "openblas") return GemmBackend::openblas;
  throw std::invalid_argument("unknown GEMM backend '" + name +
                              "'; expected onednn or openblas, or libxsmm (the default: oneDNN with libxsmm for "
                              "small products)");
}

GemmBackend gemm_backend() {
  int b = backend_choice.load(std::memory_order_relaxed);
  if (b == kUnresolved) {
    b = static_cast<int>(backend_from_environment());
    int expected = kUnresolved;
    if (!backend_choice.compare_exchange_strong(expected, b)) b = expected;  // another thread won
  }
  return static_cast<GemmBackend>(b);
}

void set_gemm_backend(GemmBackend b) { backend_choice.store(static_cast<int>(b), std::memory_order_relaxed); }

double gemm_flops(int M, int N, int K) { return 2.0 * M * static_cast<double>(N) * K; }
double syrk_flops(int n, int k) { return static_cast<double>(n) * (n + 1.0) * k; }
double symm_flops(int m, int n) { return 2.0 * m * static_cast<double>(m) * n; }

void set_blas_accounting(bool on) { accounting_on.store(on, std::memory_order_relaxed); }

void set_blas_product_accounting(bool on) { product_accounting_on.store(on, std::memory_order_relaxed); }

std::vector<BlasProductTotals> blas_product_totals() {
  std::vector<BlasProductTotals> rows;
  {
    const std::lock_guard<std::mutex> lock(product_rows_mutex);
    for (const auto& [product, totals] : product_rows) rows.push_back({product, totals});
  }
  std::stable_sort(rows.begin(), rows.end(), [](const BlasProductTotals& a, const BlasProductTotals& b) {
    return a.totals.seconds > b.totals.seconds;
  });
  return rows;
}

std::string describe(const BlasProduct& p) {
  static constexpr const char* kRoutines[] = {"sgemm", "dgemm", "gemm_bf16", "ssyrk", "dsyrk", "ssymm", "dsymm"};
  const auto t = [](Trans x) { return x == Trans::yes ? 'T' : 'N'; };
  std::string s = kRoutines[static_cast<int>(p.routine)];
  const bool symm = p.routine == BlasRoutine::ssymm || p.routine == BlasRoutine::dsymm;
  const bool syrk = p.routine == BlasRoutine::ssyrk || p.routine == BlasRoutine::dsyrk;
  if (!symm) {
    s.push_back(' ');
    s.push_back(t(p.ta));
    if (!syrk) s.push_back(t(p.tb));
  }
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on " " + std::string.
  const int sizes[] = {p.m, p.n, p.k};
  for (int i = 0; i < 3; ++i) {
    s.push_back(i == 0 ? ' ' : 'x');
    s.append(std::to_string(sizes[i]));
  }
  if (p.scaled) s += " alpha";
  if (p.accumulates) s += " +C";
  return s;
}

BlasTotals blas_totals() {
  BlasTotals t;
  t.calls = accounted_calls.load(std::memory_order_relaxed);
  t.flops = accounted_flops.load(std::memory_order_relaxed);
  t.seconds = 1e-9 * static_cast<double>(accounted_nanoseconds.load(std::memory_order_relaxed));
  return t;
}

void sgemm_on(GemmBackend b, Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  const AccountedCall account(gemm_flops(M, N, K), {BlasRoutine::sgemm, ta, tb, M, N, K, alpha != 1.0f, beta != 0.0f});
  if (b == GemmBackend::libxsmm && libxsmm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
  if (b != GemmBackend::openblas)
    onednn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_sgemm(CblasRowMajor, cblas(ta), cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ssyrk_upper_on(GemmBackend b, bool trans, int n, int k, float alpha, const float* A, int lda, float beta, float* C,
                    int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k), {BlasRoutine::ssyrk, trans ? Trans::yes : Trans::no, Trans::no, n, n, k,
                                                 alpha != 1.0f, beta != 0.0f});
  if (b != GemmBackend::openblas)  // libxsmm: the optimizers' symmetric products are large, oneDNN's
    onednn_syrk_upper(trans, n, k, alpha, A, lda, beta, C, ldc);
  else
    cblas_ssyrk(CblasRowMajor, CblasUpper, trans ? CblasTrans : CblasNoTrans, n, k, alpha, A, lda, beta, C, ldc);
}

void ssymm_upper_left_on(GemmBackend b, int m, int n, float alpha, const float* S, int lds, const float* B, int ldb,
                         float beta, float* C, int ldc) {
  if (m == 0 || n == 0) return;
  const AccountedCall account(symm_flops(m, n),
                              {BlasRoutine::ssymm, Trans::no, Trans::no, m, n, m, alpha != 1.0f, beta != 0.0f});
  if (b != GemmBackend::openblas)
    onednn_symm_upper_left(m, n, alpha, S, lds, B, ldb, beta, C, ldc);
  else
    cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, m, n, alpha, S, lds, B, ldb, beta, C, ldc);
}

template <>
void gemm<float>(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  sgemm_on(gemm_backend(), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(Trans ta, Trans tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                  int ldb, double beta, double* C, int ldc) {
  if (M == 0 || N == 0) return;
  const AccountedCall account(gemm_flops(M, N, K), {BlasRoutine::dgemm, ta, tb, M, N, K, alpha != 1.0, beta != 0.0});
  cblas_dgemm(CblasRowMajor, cblas(ta), cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {

// The default backend's syrk runs on OpenBLAS where that is the faster one (prefer_openblas_syrk);
// a forced backend (EXPT_GEMM_BACKEND) runs its own, so comparisons stay what they say.
GemmBackend syrk_backend() {
  const GemmBackend b = gemm_backend();
  return b == GemmBackend::libxsmm && syrk_on_openblas() ? GemmBackend::openblas : b;
}

}  // namespace

template <>
void syrk_upper<float>(int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  ssyrk_upper_on(syrk_backend(), false, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper<double>(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k),
                              {BlasRoutine::dsyrk, Trans::no, Trans::no, n, n, k, alpha != 1.0, beta != 0.0});
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper_trans<float>(int n, int k, float alpha, const float* A, int lda, float beta, float* C, int ldc) {
  ssyrk_upper_on(syrk_backend(), true, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void syrk_upper_trans<double>(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  if (n == 0) return;
  const AccountedCall account(syrk_flops(n, k),
                              {BlasRoutine::dsyrk, Trans::yes, Trans::no, n, n, k, alpha != 1.0, beta != 0.0});
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, lda, beta, C, ldc);
}

template <>
void symm_upper_left<float>(int m, int n, float alpha, const float* S, int lds, const float* B, int ldb, float beta,
                            float* C, int ldc) {
  ssymm_upper_left_on(gemm_backend(), m, n, alpha, S, lds, B, ldb, beta, C, ldc);
}

template <>
void symm_upper_left<double>(int m, int n, double alpha, const double* S, int lds, const double* B, int ldb,
                             double beta, double* C, int ldc) {
  if (m == 0 || n == 0) return;
  const AccountedCall account(symm_flops(m, n),
                              {BlasRoutine::dsymm, Trans::no, Trans::no, m, n, m, alpha != 1.0, beta != 0.0});
  cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, m, n, alpha, S, lds, B, ldb, beta, C, ldc);
}

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw std::invalid_argument("unknown precision '" + name + "'; expected fp32 or bf16");
}

float round_to_bf16(float x) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  if (std::isnan(x)) return std::bit_cast<float>((u | 0x00400000u) & 0xFFFF0000u);  // quiet NaN, sign kept
  // VCVTNEPS2BF16 treats fp32 denormals as zero; so does this reference of it.
  if ((u & 0x7F800000u) == 0) return std::bit_cast<float>(u & 0x80000000u);
  u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest, ties to even, on the 16 dropped bits
  return std::bit_cast<float>(u & 0xFFFF0000u);
}

namespace {

// in [rows, cols] (row stride ld) -> out [rows, cols] contiguous bf16, with VCVTNEPS2BF16 (round
// to nearest even; denormals to zero): 16 floats per instruction, the row tail masked.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void convert_to_bf16(int rows, int cols,
                                                                                     const float* in, int ld,
                                                                                     std::uint16_t* out) {
  for (int r = 0; r < rows; ++r) {
    const float* src = in + static_cast<std::size_t>(r) * ld;
    std::uint16_t* dst = out + static_cast<std::size_t>(r) * cols;
    int c = 0;
    for (; c + 16 <= cols; c += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c),
                          reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(src + c))));
    if (c < cols) {
      const __mmask16 tail = static_cast<__mmask16>((1u << (cols - c)) - 1u);
      _mm256_mask_storeu_epi16(dst + c, tail,
                               reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, src + c))));
    }
  }
}

// One matmul primitive per shape: op(A) [M, K] and op(B) [K, N] bf16, contiguous in their stored
// layout (a transposed operand is a column-major view), C [M, N] fp32 with row stride ldc; with
// accumulate, C += product (sum post-op), else C = product.
struct Bf16Key {
  bool ta, tb;
  int M, N, K, ldc;
  bool accumulate;
  bool operator==(const Bf16Key&) const = default;
};

struct Bf16KeyHash {
  std::size_t operator()(const Bf16Key& key) const {
    std::size_t h = 0;
    for (int v : {static_cast<int>(key.ta), static_cast<int>(key.tb), key.M, key.N, key.K, key.ldc,
                  static_cast<int>(key.accumulate)})
      h = h * 1000003u ^ static_cast<std::size_t>(v);
    return h;
  }
};

struct Bf16Matmul {
  dnnl::memory::desc a, b, c;
  dnnl::matmul primitive;
};

const Bf16Matmul& bf16_matmul(const dnnl::engine& engine, const Bf16Key& key) {
  thread_local std::unordered_map<Bf16Key, Bf16Matmul, Bf16KeyHash> primitives;
  const auto found = primitives.find(key);
  if (found != primitives.end()) return found->second;
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  const dnnl::memory::dim M = key.M, N = key.N, K = key.K;
  const dnnl::memory::desc a({M, K}, dt::bf16, key.ta ? dims{1, M} : dims{K, 1});
  const dnnl::memory::desc b({K, N}, dt::bf16, key.tb ? dims{1, K} : dims{N, 1});
  const dnnl::memory::desc c({M, N}, dt::f32, dims{key.ldc, 1});
  dnnl::primitive_attr attr;
  if (key.accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine);
  return primitives.emplace(key, Bf16Matmul{a, b, c, dnnl::matmul(pd)}).first->second;
}

}  // namespace

void gemm_bf16(Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  const AccountedCall account(gemm_flops(M, N, K),
                              {BlasRoutine::gemm_bf16, ta, tb, M, N, K, alpha != 1.0f, beta != 0.0f});
  if (K == 0) {  // BLAS semantics, as onednn_sgemm
    onednn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  align_openmp_threads();
  thread_local const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  thread_local dnnl::stream stream(engine);
  thread_local std::vector<std::uint16_t> a_bf16, b_bf16;
  thread_local std::vector<float> product;
  const std::size_t a_size = static_cast<std::size_t>(M) * K, b_size = static_cast<std::size_t>(K) * N;
  if (a_bf16.size() < a_size) a_bf16.resize(a_size);
  if (b_bf16.size() < b_size) b_bf16.resize(b_size);
  // Stored layouts: A is [M, K] or, transposed, [K, M]; B is [K, N] or [N, K].
  convert_to_bf16(ta == Trans::yes ? K : M, ta == Trans::yes ? M : K, A, lda, a_bf16.data());
  convert_to_bf16(tb == Trans::yes ? N : K, tb == Trans::yes ? K : N, B, ldb, b_bf16.data());
  const bool direct = alpha == 1.0f && (beta == 0.0f || beta == 1.0f);
  const Bf16Key key{ta == Trans::yes, tb == Trans::yes, M, N, K, direct ? ldc : N, direct && beta == 1.0f};
  const Bf16Matmul& mm = bf16_matmul(engine, key);
  if (!direct && product.size() < static_cast<std::size_t>(M) * N) product.resize(static_cast<std::size_t>(M) * N);
  float* target = direct ? C : product.data();
  dnnl::memory a(mm.a, engine, a_bf16.data()), b(mm.b, engine, b_bf16.data()), c(mm.c, engine, target);
  mm.primitive.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  stream.wait();
  if (direct) return;
  for (int i = 0; i < M; ++i) {
    float* c_row = C + static_cast<std::size_t>(i) * ldc;
    const float* t = product.data() + static_cast<std::size_t>(i) * N;
    if (beta == 0.0f)
      for (int j = 0; j < N; ++j) c_row[j] = alpha * t[j];
    else
      for (int j = 0; j < N; ++j) c_row[j] = alpha * t[j] + beta * c_row[j];
  }
}

void gemm_in(Precision p, Trans ta, Trans tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
             int ldb, float beta, float* C, int ldc) {
  if (p == Precision::bf16)
    gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

void set_blas_threads(int n) {
  openblas_set_num_threads(n);
  blas_thread_count.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

}  // namespace expt::kernels
