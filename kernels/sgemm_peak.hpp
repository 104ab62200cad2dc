// The machine's fp32 limit, measured: the best single-thread sgemm rate any available backend
// reaches on this CPU (`expt bench` reports MFU against it, docs/performance.md). OpenBLAS's rate
// depends on the kernel it picked (OPENBLAS_CORETYPE is read once, when the library loads), so
// each applicable core type is measured in a child process: `expt bench --sgemm-probe` with that
// core type in its environment.
#pragma once

#include <string>
#include <vector>

#include "kernels/gemm.hpp"

namespace expt::kernels {

// Best rate (GFLOP/s) of square n x n x n products, n in `sizes`, `repeats` timed runs each after
// one untimed warm-up, on `backend`, in the calling thread with the current thread count.
double sgemm_rate_gflops(GemmBackend backend, const std::vector<int>& sizes, int repeats);

// Whether `backend` computes a 67 x 45 x 129 product with strides and beta = 1 within 1e-4
// (scaled) of the double reference: a forced OpenBLAS core type can run on a processor it was
// not written for and compute wrong results, and a rate of wrong results is no limit.
bool sgemm_correct(GemmBackend backend);

// The machine's bf16 limit for train.precision: bf16 (`expt bench` reports a second MFU against
// it): the best rate (GFLOP/s) of gemm_bf16 on square n x n x n products, n in `sizes`, timed as
// above. The operands are converted to bf16 inside each product, as in every bf16 product of the
// step (at n = 2048 the conversion is a few percent of the product). Needs bf16 support
// (bf16_support_error, kernels/processor.hpp).
double bf16_gemm_rate_gflops(const std::vector<int>& sizes, int repeats);

// Whether gemm_bf16 computes a 67 x 45 x 129 product with strides and beta = 1 within fp32
// accumulation error of the double reference on the bf16-rounded operands.
bool bf16_gemm_correct();

// The OpenBLAS core types worth measuring on this CPU: the ones whose instruction sets it has
// (Haswell: avx2 + fma; SkylakeX: avx512f/bw/vl; Cooperlake: + avx512_bf16; SapphireRapids:
// + amx_bf16).
std::vector<std::string> applicable_openblas_cores();

}  // namespace expt::kernels
