#include "kernels/sgemm_peak.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>

#include "kernels/processor.hpp"

namespace expt::kernels {

namespace {

// The best rate of `product(n, a, b, c)` (an n x n x n C = A B) over `sizes`, `repeats` timed runs
// each after one untimed warm-up.
template <class Product>
double square_rate_gflops(const std::vector<int>& sizes, int repeats, Product product) {
  using Clock = std::chrono::steady_clock;
  double best = 0;
  for (int n : sizes) {
    const std::size_t nn = static_cast<std::size_t>(n) * n;
    std::vector<float> a(nn), b(nn), c(nn, 0.0f);
    for (std::size_t i = 0; i < nn; ++i) {
      a[i] = static_cast<float>((i * 7919) % 1000) * 1e-3f - 0.5f;
      b[i] = static_cast<float>((i * 104729) % 1000) * 1e-3f - 0.5f;
    }
    product(n, a.data(), b.data(), c.data());
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = Clock::now();
      product(n, a.data(), b.data(), c.data());
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      best = std::max(best, gemm_flops(n, n, n) / s * 1e-9);
    }
  }
  return best;
}

// Whether `product` computes C = A B^T + C for a 67 x 45 x 129 case with strides within `tolerance`
// (times sqrt(K)) of the double reference on `round` applied to the operands.
template <class Product, class Round>
bool product_correct(Product product, Round round, double tolerance) {
  const int M = 67, N = 45, K = 129, lda = K + 1, ldb = K + 2, ldc = N + 3;
  std::vector<float> a(static_cast<std::size_t>(M) * lda), b(static_cast<std::size_t>(N) * ldb),
      c(static_cast<std::size_t>(M) * ldc);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 53) % 97) / 48.0f - 1.0f;
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<float>((i * 11) % 13) / 6.0f - 1.0f;
  std::vector<double> ad(a.size()), bd(b.size()), cd(c.begin(), c.end());
  for (std::size_t i = 0; i < a.size(); ++i) ad[i] = round(a[i]);
  for (std::size_t i = 0; i < b.size(); ++i) bd[i] = round(b[i]);
  product(M, N, K, a.data(), lda, b.data(), ldb, c.data(), ldc);
  gemm_reference<double>(Trans::no, Trans::yes, M, N, K, 1.0, ad.data(), lda, bd.data(), ldb, 1.0, cd.data(), ldc);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      const std::size_t e = static_cast<std::size_t>(i) * ldc + j;
      if (!(std::abs(static_cast<double>(c[e]) - cd[e]) <= tolerance * std::sqrt(static_cast<double>(K)))) return false;
    }
  return true;
}

}  // namespace

double sgemm_rate_gflops(GemmBackend backend, const std::vector<int>& sizes, int repeats) {
  return square_rate_gflops(sizes, repeats, [backend](int n, const float* a, const float* b, float* c) {
    sgemm_on(backend, Trans::no, Trans::no, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  });
}

bool sgemm_correct(GemmBackend backend) {
  return product_correct(
      [backend](int M, int N, int K, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
        sgemm_on(backend, Trans::no, Trans::yes, M, N, K, 1.0f, a, lda, b, ldb, 1.0f, c, ldc);
      },
      [](float x) { return static_cast<double>(x); }, 1e-4);
}

double bf16_gemm_rate_gflops(const std::vector<int>& sizes, int repeats) {
  return square_rate_gflops(sizes, repeats, [](int n, const float* a, const float* b, float* c) {
    gemm_bf16(Trans::no, Trans::no, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  });
}

bool bf16_gemm_correct() {
  return product_correct([](int M, int N, int K, const float* a, int lda, const float* b, int ldb, float* c,
                            int ldc) { gemm_bf16(Trans::no, Trans::yes, M, N, K, 1.0f, a, lda, b, ldb, 1.0f, c, ldc); },
                         [](float x) { return static_cast<double>(round_to_bf16(x)); }, 1e-4);
}

std::vector<std::string> applicable_openblas_cores() {
  const CpuFeatures& cpu = cpu_features();
  std::vector<std::string> cores;
  if (cpu.has("avx2") && cpu.has("fma")) cores.emplace_back("Haswell");
  const bool avx512 = cpu.has("avx512f") && cpu.has("avx512bw") && cpu.has("avx512vl");
  if (avx512) cores.emplace_back("SkylakeX");
  if (avx512 && cpu.has("avx512_bf16")) cores.emplace_back("Cooperlake");
  if (avx512 && cpu.has("amx_bf16")) cores.emplace_back("SapphireRapids");
  return cores;
}

}  // namespace expt::kernels
