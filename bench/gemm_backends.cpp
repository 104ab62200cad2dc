// The fp32 GEMM backends side by side over the products the models actually issue
// (docs/performance.md, "GEMM backends"): projections, data and weight gradients of a d_model 128
// and 256 model at 8 x 256 tokens, the MLP, the LM head, GLA's per-chunk products, attention's
// per-head scores, the delta rule's / DeltaProduct's per-chunk products, and Muon's Newton-Schulz
// products (general, syrk and symm at the model's matrix sizes). Each row: best of 5 timed batches,
// GFLOP/s per backend (libxsmm: libxsmm's JIT kernels for products up to 64^3 multiply-adds,
// oneDNN above), oneDNN / OpenBLAS and libxsmm / oneDNN.
//
//   build/release/bench/bench_gemm_backends [--repeats 5]
// Run it with the environment CI has (OPENBLAS_CORETYPE as set, or not); the table's header says
// which OpenBLAS core, which oneDNN ISA and which libxsmm target ran.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"

namespace {

using expt::kernels::GemmBackend;
using expt::kernels::Trans;

enum class Kind { gemm, syrk, symm };

struct Product {
  const char* what;
  Kind kind;
  Trans ta, tb;
  int M, N, K;  // gemm: op(A) M x K, op(B) K x N; syrk: n = M, k = K; symm: m = M, n = N
};

double flops(const Product& p) {
  switch (p.kind) {
    case Kind::gemm:
      return expt::kernels::gemm_flops(p.M, p.N, p.K);
    case Kind::syrk:
      return expt::kernels::syrk_flops(p.M, p.K);
    case Kind::symm:
      return expt::kernels::symm_flops(p.M, p.N);
  }
  return 0;
}

double best_rate(GemmBackend backend, const Product& p, int repeats) {
  // Operand sizes: gemm op(A) M x K and op(B) K x N as stored; syrk A n x k; symm S m x m, B m x n.
  const int rows_a = p.ta == Trans::yes ? p.K : p.M, cols_a = p.ta == Trans::yes ? p.M : p.K;
  const int cols_b = p.tb == Trans::yes ? p.K : p.N;
  std::size_t size_a = static_cast<std::size_t>(rows_a) * cols_a, size_b = static_cast<std::size_t>(p.K) * p.N,
              size_c = static_cast<std::size_t>(p.M) * p.N;
  if (p.kind == Kind::syrk) size_c = static_cast<std::size_t>(p.M) * p.M;
  if (p.kind == Kind::symm) {
    size_a = static_cast<std::size_t>(p.M) * p.M;
    size_b = size_c;
  }
  std::vector<float> a(size_a), b(size_b), c(size_c);
  auto run = [&] {
    switch (p.kind) {
      case Kind::gemm:
        expt::kernels::sgemm_on(backend, p.ta, p.tb, p.M, p.N, p.K, 1.0f, a.data(), cols_a, b.data(), cols_b, 0.0f,
                                c.data(), p.N);
        break;
      case Kind::syrk:
        expt::kernels::ssyrk_upper_on(backend, false, p.M, p.K, 1.0f, a.data(), p.K, 0.0f, c.data(), p.M);
        break;
      case Kind::symm:
        expt::kernels::ssymm_upper_left_on(backend, p.M, p.N, 1.0f, a.data(), p.M, b.data(), p.N, 0.0f, c.data(), p.N);
        break;
    }
  };
  // Each timed batch runs about 20 ms of products.
  run();
  const auto t0 = std::chrono::steady_clock::now();
  run();
  const double once = std::max(1e-7, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const int per_batch = std::max(1, static_cast<int>(0.02 / once));
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto s = std::chrono::steady_clock::now();
    for (int i = 0; i < per_batch; ++i) run();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count() / per_batch;
    best = std::max(best, flops(p) / dt * 1e-9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 5;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  expt::kernels::set_blas_threads(1);
  const Trans N = Trans::no, T = Trans::yes;
  const std::vector<Product> products = {
      // d_model 128 (4 heads, GLA expand_k 0.5: d_k 16, d_v 32; SwiGLU 341), 8 x 256 tokens
      {"d128 projection  x W^T", Kind::gemm, N, T, 2048, 128, 128},
      {"d128 data grad   dY W", Kind::gemm, N, N, 2048, 128, 128},
      {"d128 weight grad dY^T X", Kind::gemm, T, N, 128, 128, 2048},
      {"d128 MLP up      x W^T", Kind::gemm, N, T, 2048, 341, 128},
      {"d128 MLP down    h W^T", Kind::gemm, N, T, 2048, 128, 341},
      {"d128 MLP w-grad  dY^T h", Kind::gemm, T, N, 341, 128, 2048},
      {"d128 LM head     x E^T", Kind::gemm, N, T, 2048, 256, 128},
      // d_model 256 (SwiGLU 683)
      {"d256 projection  x W^T", Kind::gemm, N, T, 2048, 256, 256},
      {"d256 data grad   dY W", Kind::gemm, N, N, 2048, 256, 256},
      {"d256 weight grad dY^T X", Kind::gemm, T, N, 256, 256, 2048},
      {"d256 MLP up      x W^T", Kind::gemm, N, T, 2048, 683, 256},
      {"d256 MLP w-grad  dY^T h", Kind::gemm, T, N, 683, 256, 2048},
      // As the DeltaProduct d_model-256 step issues them (SwiGLU hidden 768): a weight gradient in
      // both orientations (dW = dY^T X as the layers compute it, or its transpose X^T dY), and the
      // layer's input projections q 256 | k 512 | v 512 | g 256 | beta 8 fused into one product
      // (docs/performance.md, "Zen 5: eight runs per case with AdamW, and what was measured ...").
      {"d256 MLP w-grad  dY^T h (768)", Kind::gemm, T, N, 768, 256, 2048},
      {"d256 MLP w-grad  h^T dY (768)", Kind::gemm, T, N, 256, 768, 2048},
      {"d256 k,v w-grad  dY^T X (512)", Kind::gemm, T, N, 512, 256, 2048},
      {"d256 k,v w-grad  X^T dY (512)", Kind::gemm, T, N, 256, 512, 2048},
      {"d256 DP fused in x W^T (1544)", Kind::gemm, N, T, 2048, 1544, 256},
      {"d256 DP fused in dY W (1544)", Kind::gemm, N, N, 2048, 256, 1544},
      {"d256 DP fused in dY^T X (1544)", Kind::gemm, T, N, 1544, 256, 2048},
      // per-chunk and per-head products (GLA chunk 64, sub-chunk 16; attention head 32 x 256)
      {"GLA chunk q k^T (64x64x16)", Kind::gemm, N, T, 64, 64, 16},
      {"GLA chunk q S (64x32x16)", Kind::gemm, N, N, 64, 32, 16},
      {"GLA state k^T v (16x32x64)", Kind::gemm, T, N, 16, 32, 64},
      {"GLA chunk A v (64x32x64)", Kind::gemm, N, N, 64, 32, 64},
      // the same at d_model 256 (4 heads: d_k 32, d_v 64), backward's transposed forms included
      {"GLA256 sub-chunk q k^T (16x48x32)", Kind::gemm, N, T, 16, 48, 32},
      {"GLA256 chunk q S (64x64x32)", Kind::gemm, N, N, 64, 64, 32},
      {"GLA256 state k^T v (32x64x64)", Kind::gemm, T, N, 32, 64, 64},
      {"GLA256 chunk A v (64x64x64)", Kind::gemm, N, N, 64, 64, 64},
      {"GLA256 dA = dO v^T (64x64x64)", Kind::gemm, N, T, 64, 64, 64},
      {"GLA256 dv = A^T dO (64x64x64)", Kind::gemm, T, N, 64, 64, 64},
      {"GLA256 dq = dO S^T (64x32x64)", Kind::gemm, N, T, 64, 32, 64},
      // delta rule / DeltaProduct per chunk (chunk 64 virtual steps, head dim 32; DeltaProduct n_h 2
      // has 32 query rows per chunk), forward and backward
      {"DR K K^T (64x64x32 NT)", Kind::gemm, N, T, 64, 64, 32},
      {"DR Kb S (64x32x32)", Kind::gemm, N, N, 64, 32, 32},
      {"DR A rhs (64x32x64)", Kind::gemm, N, N, 64, 32, 64},
      {"DR Kd^T U (32x32x64 TN)", Kind::gemm, T, N, 32, 32, 64},
      {"DR Q K^T (32x64x32 NT)", Kind::gemm, N, T, 32, 64, 32},
      // the same at d_model 256 (head dim 64)
      {"DR256 K K^T (64x64x64 NT)", Kind::gemm, N, T, 64, 64, 64},
      {"DR256 Kb S (64x64x64)", Kind::gemm, N, N, 64, 64, 64},
      {"DR256 Kd^T U (64x64x64 TN)", Kind::gemm, T, N, 64, 64, 64},
      {"DR A^T dU (64x32x64 TN)", Kind::gemm, T, N, 64, 32, 64},
      {"DR U dH^T (64x32x32 NT)", Kind::gemm, N, T, 64, 32, 32},
      {"attention q k^T (256x256x32)", Kind::gemm, N, T, 256, 256, 32},
      {"attention P v (256x32x256)", Kind::gemm, N, N, 256, 32, 256},
      // Muon's Newton-Schulz at d_model 128: square 128 x 128 and the MLP's 128 x 512 iterates
      {"NS128 syrk X X^T (128, k 128)", Kind::syrk, N, N, 128, 0, 128},
      {"NS128 syrk X X^T (128, k 512)", Kind::syrk, N, N, 128, 0, 512},
      {"NS128 symm B X (128 x 128)", Kind::symm, N, N, 128, 128, 0},
      {"NS128 B X general (128x128x128)", Kind::gemm, N, N, 128, 128, 128},
      {"NS128 symm B X (128 x 512)", Kind::symm, N, N, 128, 512, 0},
      {"NS128 B X general (128x512x128)", Kind::gemm, N, N, 128, 512, 128},
      // Muon's Newton-Schulz at d_model 256: square, tall (683 x 256) Gram form
      {"NS X X^T general (256x256x256)", Kind::gemm, N, T, 256, 256, 256},
      {"NS syrk X X^T (256, k 683)", Kind::syrk, N, N, 256, 0, 683},
      {"NS syrk A A (256, k 256)", Kind::syrk, N, N, 256, 0, 256},
      {"NS symm B X (256 x 683)", Kind::symm, N, N, 256, 683, 0},
      {"square 1024", Kind::gemm, N, N, 1024, 1024, 1024},
  };
  const auto& cpu = expt::kernels::cpu_features();
  std::printf("CPU: %s (%s); OpenBLAS core %s; oneDNN ISA %s; libxsmm target %s; 1 thread, best of %d batches\n\n",
              cpu.model.c_str(), expt::kernels::vector_isa_name(cpu.widest()),
              expt::kernels::openblas_core_name().c_str(), expt::kernels::onednn_isa_name().c_str(),
              expt::kernels::libxsmm_target_name(), repeats);
  std::printf(
      "| product | OpenBLAS GFLOP/s | oneDNN GFLOP/s | libxsmm GFLOP/s | oneDNN / OpenBLAS | libxsmm / oneDNN |\n"
      "|---|---:|---:|---:|---:|---:|\n");
  for (const Product& p : products) {
    const double ob = best_rate(GemmBackend::openblas, p, repeats);
    const double dn = best_rate(GemmBackend::onednn, p, repeats);
    const double xs = best_rate(GemmBackend::libxsmm, p, repeats);
    std::printf("| %s | %.1f | %.1f | %.1f | %.2f | %.2f |\n", p.what, ob, dn, xs, dn / ob, xs / dn);
  }
  return 0;
}
