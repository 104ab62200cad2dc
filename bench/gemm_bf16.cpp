// train.precision: bf16 per product (docs/performance.md "bf16 mode"): the model's large products
// (projections, data and weight gradients, MLP, LM head of a d_model 128 and 256 model at 8 x 256
// tokens) as fp32 gemm on the default backend against kernels::gemm_bf16, whose time includes the
// fp32 -> bf16 conversion of both operands. Timed in CPU seconds of the calling thread, fp32 and
// bf16 batches alternated, best of the repeats each, so a loaded machine weighs on both alike.
//
//   build/release/bench/bench_gemm_bf16 [--repeats 7]
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"

namespace {

using expt::kernels::Trans;

struct Product {
  const char* what;
  Trans ta, tb;
  int M, N, K;
};

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 7;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  if (const auto error =
          expt::kernels::bf16_support_error(expt::kernels::cpu_features(), expt::kernels::onednn_isa_name())) {
    std::fprintf(stderr, "%s\n", error->c_str());
    return 1;
  }
  expt::kernels::set_blas_threads(1);
  const Trans N = Trans::no, T = Trans::yes;
  const Product products[] = {
      {"d128 projection  x W^T", N, T, 2048, 128, 128},  {"d128 data grad   dY W", N, N, 2048, 128, 128},
      {"d128 weight grad dY^T X", T, N, 128, 128, 2048}, {"d128 MLP up      x W^T", N, T, 2048, 341, 128},
      {"d128 MLP down    h W^T", N, T, 2048, 128, 341},  {"d128 MLP w-grad  dY^T h", T, N, 341, 128, 2048},
      {"d128 LM head     x E^T", N, T, 2048, 256, 128},  {"d256 projection  x W^T", N, T, 2048, 256, 256},
      {"d256 data grad   dY W", N, N, 2048, 256, 256},   {"d256 weight grad dY^T X", T, N, 256, 256, 2048},
      {"d256 MLP up      x W^T", N, T, 2048, 683, 256},  {"d256 MLP w-grad  dY^T h", T, N, 683, 256, 2048},
  };
  const auto& cpu = expt::kernels::cpu_features();
  std::printf("CPU: %s; oneDNN ISA %s; fp32 backend %s; 1 thread, CPU time, best of %d alternated batches\n\n",
              cpu.model.c_str(), expt::kernels::onednn_isa_name().c_str(),
              expt::kernels::gemm_backend_name(expt::kernels::gemm_backend()), repeats);
  std::printf("| product | fp32 GFLOP/s | bf16 GFLOP/s (with conversion) | bf16 / fp32 |\n|---|---:|---:|---:|\n");
  for (const Product& p : products) {
    const int cols_a = p.ta == T ? p.M : p.K, cols_b = p.tb == T ? p.K : p.N;
    std::vector<float> a(static_cast<std::size_t>(p.M) * p.K, 0.5f), b(static_cast<std::size_t>(p.K) * p.N, 0.25f),
        c(static_cast<std::size_t>(p.M) * p.N);
    auto run = [&](expt::kernels::Precision precision) {
      expt::kernels::gemm_in(precision, p.ta, p.tb, p.M, p.N, p.K, 1.0f, a.data(), cols_a, b.data(), cols_b, 0.0f,
                             c.data(), p.N);
    };
    const int per_batch = 20;
    double best[2] = {1e30, 1e30};
    for (auto precision : {expt::kernels::Precision::fp32, expt::kernels::Precision::bf16}) run(precision);  // warm
    for (int r = 0; r < repeats; ++r)
      for (auto precision : {expt::kernels::Precision::fp32, expt::kernels::Precision::bf16}) {
        const double start = thread_cpu_seconds();
        for (int i = 0; i < per_batch; ++i) run(precision);
        double& slot = best[precision == expt::kernels::Precision::bf16];
        slot = std::min(slot, (thread_cpu_seconds() - start) / per_batch);
      }
    const double flops = expt::kernels::gemm_flops(p.M, p.N, p.K);
    std::printf("| %s (%dx%dx%d %c%c) | %.1f | %.1f | %.2f |\n", p.what, p.M, p.N, p.K, p.ta == T ? 'T' : 'N',
                p.tb == T ? 'T' : 'N', flops / best[0] * 1e-9, flops / best[1] * 1e-9, best[0] / best[1]);
  }
  return 0;
}
