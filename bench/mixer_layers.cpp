// Forward+backward throughput of one sequence-mixer LAYER (the core/nn Mixer: projections, short
// conv, kernel, output gate and norm, o_proj; no embedding, MLP or head), single thread, fp32.
//
//   bench_mixer_layers CONFIG [--set key.path=value ...] [--iters N] [--warmup N]
//
// The layer is make_mixer(cfg.model) at batch train.batch_size and length task.seq_len, its
// weights drawn as Model::init_parameters draws them (matrices N(0, init_std), o_proj scaled by
// 1/sqrt(2 n_layers) under `rescale`, vectors 1, then Mixer::init_parameters). Input x and the
// upstream gradient dy are N(0, 1). One iteration = zero_grad, forward(x), backward(dy). Prints one
// JSON object: tokens/s by wall time and by process CPU time, the FLOP count used and the achieved
// GFLOP/s against the best single-thread OpenBLAS sgemm measured in the same run.
//
// FLOPs per token (forward+backward) = 6 * (matrix parameters of the layer) + core_flops_per_token(L)
// (Mixer::core_flops_per_token: the chunk formulas of docs/derivations/gla.md and
// docs/derivations/delta_rule.md, 3 x forward; attention 6 (L + 1) d). The same count as Model::flops_per_token
// restricted to one mixer. bench/peer/compare_mixers.py runs this against the PyTorch peer of the same layer.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config/loader.hpp"
#include "core/nn/mixer.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/workspace.hpp"
#include "core/util/random.hpp"
#include "experiments/cli/bench_command.hpp"
#include "kernels/gemm.hpp"
#include "kernels/sgemm_peak.hpp"

namespace {

using namespace expt;

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<float> normal_vector(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = dist(gen);
  return out;
}

int run(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> sets;
  int iters = 10, warmup = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--set" || a == "--iters" || a == "--warmup") && i + 1 >= argc)
      throw std::invalid_argument(a + " needs a value");
    if (a == "--set")
      sets.emplace_back(argv[++i]);
    else if (a == "--iters")
      iters = std::stoi(argv[++i]);
    else if (a == "--warmup")
      warmup = std::stoi(argv[++i]);
    else if (config_path.empty() && a.rfind("--", 0) != 0)
      config_path = a;
    else
      throw std::invalid_argument("unknown argument " + a);
  }
  if (config_path.empty() || iters <= 0 || warmup < 0)
    throw std::invalid_argument("usage: bench_mixer_layers CONFIG [--set k=v ...] [--iters N>0] [--warmup N>=0]");

  const config::TrialConfig cfg = config::load_trial_config(config_path, sets);
  const config::ModelConfig& m = cfg.model;
  const int B = cfg.train.batch_size, L = cfg.task.seq_len, d = m.d_model;

  kernels::set_blas_threads(1);
  // The better of the two backends in this process (expt bench also probes OpenBLAS's other core
  // types in child processes, which this program, not being `expt`, cannot start).
  const double sgemm = std::max(kernels::sgemm_rate_gflops(kernels::GemmBackend::onednn, {512, 1024}, 5),
                                kernels::sgemm_rate_gflops(kernels::GemmBackend::openblas, {512, 1024}, 5));

  nn::ParameterStore<float> store;
  auto mixer = nn::make_mixer(store, "blocks.0.mixer.", m);
  if (!mixer) throw std::invalid_argument("model.mixer.type is none");
  store.allocate();
  const std::optional<std::size_t> out_id = mixer->output_weight_id();
  double matrix_params = 0, n_params = 0;
  for (std::size_t id = 0; id < store.params().size(); ++id) {
    const nn::ParamInfo& info = store.params()[id];
    n_params += static_cast<double>(info.size);
    float* w = store.value(id);
    if (info.role == nn::ParamRole::vector) {
      std::fill(w, w + info.size, 1.0f);
      continue;
    }
    matrix_params += static_cast<double>(info.size);
    const double sd = m.init_std * (m.init == "rescale" && id == out_id ? 1.0 / std::sqrt(2.0 * m.n_layers) : 1.0);
    for (std::size_t e = 0; e < info.size; ++e)
      w[e] = static_cast<float>(sd * rng::normal(cfg.seed, rng::Stream::init, id, 0, e));
  }
  mixer->init_parameters(cfg.seed, m.init_std);

  const std::size_t n = static_cast<std::size_t>(B) * L * d;
  const auto x = normal_vector(n, 1), dy = normal_vector(n, 2);
  std::vector<float> y(n), dx(n);
  nn::Workspace<float> workspace;  // the backward scratch, as Model shares it between blocks
  double wall = 0, cpu = 0;
  for (int it = 0; it < warmup + iters; ++it) {
    const double w0 = wall_seconds(), c0 = process_cpu_seconds();
    store.zero_grad();
    mixer->forward(x.data(), y.data(), B, L);
    mixer->backward(x.data(), dy.data(), dx.data(), B, L, workspace);
    if (it >= warmup) {
      wall += wall_seconds() - w0;
      cpu += process_cpu_seconds() - c0;
    }
  }
  const double tokens = static_cast<double>(B) * L * iters;
  const double core = mixer->core_flops_per_token(L);
  const double flops = 6.0 * matrix_params + core;
  nlohmann::json j;
  j["side"] = "expt";
  j["config"] = {{"mixer", m.mixer.type}, {"d_model", d}, {"heads", m.mixer.heads}, {"batch", B}, {"seq_len", L}};
  j["n_params"] = n_params;
  j["matrix_params"] = matrix_params;
  j["core_flops_per_token"] = core;
  j["flops_per_token"] = flops;
  j["iters"] = iters;
  j["step_s"] = wall / iters;
  j["cpu_step_s"] = cpu / iters;
  j["tokens_per_s"] = tokens / wall;
  j["tokens_per_cpu_s"] = tokens / cpu;
  j["gflops"] = flops * tokens / wall * 1e-9;
  j["gflops_cpu"] = flops * tokens / cpu * 1e-9;
  j["sgemm_peak_gflops"] = sgemm;
  double checksum = 0;
  for (float v : dx) checksum += v;
  j["dx_sum"] = checksum;
  std::cout << j.dump(1) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_mixer_layers: %s\n", e.what());
    return 2;
  }
}
