// `expt bench CONFIG [--steps N] [--warmup N] [--threads N|auto] [--format table|json] [--dump DIR]`: the training
// throughput of one trial config, measured on the trainer's own step (experiments/trial/training_step.hpp:
// data, forward + loss, backward, gradient reduction, clip + optimizer), the step `expt run` runs.
// docs/performance.md describes every figure; the short version:
//   tokens/s      global batch * train length * steps / time of the timed steps (warmup excluded)
//   MFU           flops_per_token * tokens/s / (ranks * threads * sgemm peak), the peak being the
//                 best single-thread OpenBLAS sgemm GFLOP/s at n = 512 and 1024 measured in this run
//   phases        wall time per step of each phase, and its share of the step
//   memory        peak RSS (getrusage) against the analytic bytes: parameters + gradients +
//                 optimizer state (its state() arrays) + activations (bench_activation_floats)
// --blas-products adds a table of the step's BLAS products by shape: calls, ms and GFLOP/s per step.
// --dump DIR writes the initial parameters, the first batches and the losses of the first steps,
// so that bench/peer/ can check that its PyTorch model is the same function (docs/performance.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"

namespace expt::experiments {

struct BenchOptions {
  int steps = 20;                // timed steps
  int warmup = 2;                // untimed steps before them (first-call allocations, caches)
  std::string format = "table";  // table | json
  std::string dump_dir;          // empty: no dump
  std::string threads = "1";     // BLAS threads per rank: a number or auto (experiments/cli/threads.hpp)
  bool blas_products = false;    // also account the BLAS calls per product (kernels/gemm.hpp)
};

// argc/argv go to MPI_Init when launched by mpirun (data-parallel benchmark over the ranks).
int bench_command(int argc, char** argv, const std::string& config_path, const std::vector<std::string>& sets,
                  const BenchOptions& options);

}  // namespace expt::experiments
