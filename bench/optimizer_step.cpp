// Optimizer step time, single BLAS thread, fp32 parameters (docs/optimizers.md "Performance").
//   model_step/<type>        one step over the parameters of the 4-layer d_model 256 model of
//                            kModelYaml (attention, SwiGLU 768, 3.3 M parameters; M-FAC window 16)
//   matrix_step/<type>/n     one step on a single n x n matrix (role matrix); M-FAC window 16;
//                            SOAP only up to 1024 (its double rotations cost 8·n³ flops per step)
//   ns/n, ns_gemm_only/n     Muon's Newton–Schulz (5 Keller-Jordan steps) on n x n, and the same
//                            15 sgemm calls alone on the same shapes: the BLAS floor of NS
//   soap_gemm_only/n         the 6 dgemm calls of a SOAP step (rotate to the basis and back, L and
//                            R): its BLAS floor
//   soap_refresh/n/f         SOAP on n x n with precondition_frequency f (1: every step refreshes;
//                            1000000: never): the refresh cost amortised over f steps
//   mfac_window/m            M-FAC on d = 65536 (one 256 x 256 matrix) with window m
//   mfac_model/m             M-FAC with window m on the model's 3.3 M parameters (m·d floats: 13.5 GB
//                            at m = 1024); counters: blas_ms, the two passes over the same window
//                            G g and Gᵀ c alone (gemm with N = 1, as the step calls them), timed
//                            alternately with the step in the same loop, and step_over_blas
//   diagnostics/model        train.diagnostics_every's work for one step of the model above
// Gradients are fixed Gaussian; each iteration is one step (step counter increasing).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/config/loader.hpp"
#include "core/data/task.hpp"
#include "core/nn/model.hpp"
#include "kernels/gemm.hpp"
#include "kernels/newton_schulz.hpp"
#include "optimizers/diagnostics.hpp"
#include "optimizers/mfac.hpp"
#include "optimizers/optimizer.hpp"

namespace {

namespace k = expt::kernels;
using expt::nn::ParameterStore;

// The model of the "Muon step vs training step" comparison; `expt run configs/quickstart.yaml`
// with the same model overrides times the training step (docs/optimizers.md).
constexpr const char* kModelYaml = R"(
task: {type: word_problem, group: Z5, seq_len: 64, eval_lengths: [64]}
model: {d_model: 256, n_layers: 4, mixer: {type: attention, heads: 4}, mlp: {type: swiglu, intermediate_size: 768}}
)";

void fill_gaussian(std::span<float> x, unsigned seed, float scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  for (float& v : x) v = dist(gen);
}

expt::config::OptimizerConfig optimizer_config(const std::string& type) {
  std::vector<std::string> sets = {"optimizer.type=" + type};
  if (type == "mfac") sets.push_back("optimizer.window=16");
  return expt::config::parse_trial_config(kModelYaml, "bench", sets).optimizer;
}

// MfacWindow calloc's G, so rows not yet written read as the kernel's shared zero page, which stays
// in cache and would make both passes over G unrealistically fast. Fill every row as m steps of
// training would (the timing does not depend on the values; the factor need not match them).
void fill_mfac_windows(const expt::optim::MFac& opt) {
  for (std::size_t b = 0; b < opt.block_count(); ++b) {
    const auto g = opt.window(b).gradients();
    fill_gaussian(std::span<float>(const_cast<float*>(g.data()), g.size()), 4, 1e-3f);
  }
}

void run_steps(benchmark::State& state, expt::optim::Optimizer& opt, ParameterStore<float>& store) {
  if (const auto* mfac = dynamic_cast<const expt::optim::MFac*>(&opt)) fill_mfac_windows(*mfac);
  auto refs = expt::optim::param_refs(store);
  std::int64_t t = 0;
  opt.step(refs, ++t, 1e-3);  // SOAP's first call only initialises; allocations happen here
  for (auto _ : state) {
    opt.step(refs, ++t, 1e-3);
    benchmark::DoNotOptimize(store.values().data());
  }
}

void model_step(benchmark::State& state, const std::string& type) {
  k::set_blas_threads(1);
  const auto cfg = expt::config::parse_trial_config(kModelYaml, "bench", {});
  const int vocab = expt::data::make_task(cfg.task)->vocab_size();
  ParameterStore<float> store;
  expt::nn::Model<float> model(cfg.model, vocab, store);
  store.allocate();
  model.init_parameters(1);
  fill_gaussian(store.grads(), 2, 1e-3f);
  auto opt = expt::optim::make_optimizer(optimizer_config(type), store.params());
  state.counters["params"] = static_cast<double>(store.size());
  run_steps(state, *opt, store);
}

void diagnostics(benchmark::State& state) {
  const auto cfg = expt::config::parse_trial_config(kModelYaml, "bench", {});
  const int vocab = expt::data::make_task(cfg.task)->vocab_size();
  ParameterStore<float> store;
  expt::nn::Model<float> model(cfg.model, vocab, store);
  store.allocate();
  model.init_parameters(1);
  fill_gaussian(store.grads(), 2, 1e-3f);
  std::vector<float> before(store.values().begin(), store.values().end());
  fill_gaussian(before, 3, 1e-3f);
  std::size_t largest = 0;
  for (const auto& p : store.params())
    largest = std::max(largest, p.size + static_cast<std::size_t>(p.rows() + p.cols()));
  std::vector<double> work(largest);
  for (auto _ : state)
    for (std::size_t i = 0; i < store.params().size(); ++i) {
      const auto& p = store.params()[i];
      if (p.shape.size() != 2) continue;
      auto d = expt::optim::matrix_diagnostics(before.data() + p.offset, store.value(i), store.grad(i),
                                               static_cast<int>(p.rows()), static_cast<int>(p.cols()), work.data());
      benchmark::DoNotOptimize(d);
    }
}

void matrix_step(benchmark::State& state, const std::string& type) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  ParameterStore<float> store;
  store.add("blocks.0.mlp.up_proj.weight", {n, n}, expt::nn::ParamRole::matrix);
  store.allocate();
  fill_gaussian(store.values(), 1, 0.02f);
  fill_gaussian(store.grads(), 2, 1e-3f);
  auto opt = expt::optim::make_optimizer(optimizer_config(type), store.params());
  run_steps(state, *opt, store);
}

void ns(benchmark::State& state) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  std::vector<float> u(static_cast<std::size_t>(n) * n), out(u.size()), ws(k::newton_schulz_workspace_size(n, n));
  fill_gaussian(u, 3, 1.0f);
  const k::NsCoefficients steps[5] = {k::kKellerJordanNs, k::kKellerJordanNs, k::kKellerJordanNs, k::kKellerJordanNs,
                                      k::kKellerJordanNs};
  for (auto _ : state) {
    k::newton_schulz<float>(u.data(), n, n, steps, 1e-7, out.data(), ws);
    benchmark::DoNotOptimize(out.data());
  }
}

// The gemm calls of 5 NS iterations on an n x n input: A = X Xᵀ, B = c·A·A, X' = B·X + X'.
void ns_gemm_only(benchmark::State& state) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  const std::size_t nn = static_cast<std::size_t>(n) * n;
  std::vector<float> x(nn), a(nn), b(nn), y(nn);
  fill_gaussian(x, 3, 1.0f / static_cast<float>(n));
  for (auto _ : state) {
    for (int it = 0; it < 5; ++it) {
      k::gemm<float>(k::Trans::no, k::Trans::yes, n, n, n, 1.0f, x.data(), n, x.data(), n, 0.0f, a.data(), n);
      k::gemm<float>(k::Trans::no, k::Trans::no, n, n, n, 1.0f, a.data(), n, a.data(), n, 0.0f, b.data(), n);
      k::gemm<float>(k::Trans::no, k::Trans::no, n, n, n, 1.0f, b.data(), n, x.data(), n, 1.0f, y.data(), n);
    }
    benchmark::DoNotOptimize(y.data());
  }
}

// A SOAP step's dgemm calls on an n x n block: Q_Lᵀ G, (·) Q_R, Q_L (·), (·) Q_Rᵀ, L += G Gᵀ, R += Gᵀ G.
void soap_gemm_only(benchmark::State& state) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  const std::size_t nn = static_cast<std::size_t>(n) * n;
  std::vector<double> g(nn, 1e-3), q(nn, 1.0 / n), t1(nn), t2(nn), l(nn), r(nn);
  for (auto _ : state) {
    k::gemm<double>(k::Trans::yes, k::Trans::no, n, n, n, 1.0, q.data(), n, g.data(), n, 0.0, t1.data(), n);
    k::gemm<double>(k::Trans::no, k::Trans::no, n, n, n, 1.0, t1.data(), n, q.data(), n, 0.0, t2.data(), n);
    k::gemm<double>(k::Trans::no, k::Trans::no, n, n, n, 1.0, q.data(), n, t2.data(), n, 0.0, t1.data(), n);
    k::gemm<double>(k::Trans::no, k::Trans::yes, n, n, n, 1.0, t1.data(), n, q.data(), n, 0.0, t2.data(), n);
    k::gemm<double>(k::Trans::no, k::Trans::yes, n, n, n, 0.05, g.data(), n, g.data(), n, 0.95, l.data(), n);
    k::gemm<double>(k::Trans::yes, k::Trans::no, n, n, n, 0.05, g.data(), n, g.data(), n, 0.95, r.data(), n);
    benchmark::DoNotOptimize(t2.data());
  }
}

void soap_refresh(benchmark::State& state) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  ParameterStore<float> store;
  store.add("w", {n, n}, expt::nn::ParamRole::matrix);
  store.allocate();
  fill_gaussian(store.grads(), 2, 1e-3f);
  auto cfg = optimizer_config("soap");
  cfg.precondition_frequency = static_cast<int>(state.range(1));
  auto opt = expt::optim::make_optimizer(cfg, store.params());
  run_steps(state, *opt, store);
}

void mfac_window(benchmark::State& state) {
  k::set_blas_threads(1);
  ParameterStore<float> store;
  store.add("w", {256, 256}, expt::nn::ParamRole::matrix);
  store.allocate();
  fill_gaussian(store.grads(), 2, 1e-3f);
  auto cfg = optimizer_config("mfac");
  cfg.window = static_cast<int>(state.range(0));
  expt::optim::MFac opt(cfg, store.params());
  run_steps(state, opt, store);
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void mfac_model(benchmark::State& state) {
  k::set_blas_threads(1);
  const auto cfg = expt::config::parse_trial_config(kModelYaml, "bench", {});
  const int vocab = expt::data::make_task(cfg.task)->vocab_size();
  ParameterStore<float> store;
  expt::nn::Model<float> model(cfg.model, vocab, store);
  store.allocate();
  model.init_parameters(1);
  fill_gaussian(store.grads(), 2, 1e-3f);
  auto ocfg = optimizer_config("mfac");
  ocfg.window = static_cast<int>(state.range(0));
  expt::optim::MFac opt(ocfg, store.params());
  fill_mfac_windows(opt);
  auto refs = expt::optim::param_refs(store);
  const int m = ocfg.window, d = static_cast<int>(store.size());
  std::vector<float> g(store.grads().begin(), store.grads().end()), c(m, 1e-3f), p(m), y(d);
  std::int64_t t = 0;
  opt.step(refs, ++t, 1e-3);
  double step_s = 0, blas_s = 0;
  for (auto _ : state) {
    const double t0 = cpu_seconds();
    opt.step(refs, ++t, 1e-3);
    const double t1 = cpu_seconds();
    const float* G = opt.window(0).gradients().data();
    k::gemm<float>(k::Trans::no, k::Trans::no, m, 1, d, 1.0f, G, d, g.data(), 1, 0.0f, p.data(), 1);
    k::gemm<float>(k::Trans::yes, k::Trans::no, d, 1, m, -1.0f, G, d, c.data(), 1, 1.0f, y.data(), 1);
    const double t2 = cpu_seconds();
    benchmark::DoNotOptimize(y.data());
    state.SetIterationTime(t1 - t0);
    step_s += t1 - t0;
    blas_s += t2 - t1;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["blas_ms"] = 1e3 * blas_s / n;
  state.counters["step_over_blas"] = step_s / blas_s;
}

void register_all() {
  const char* types[] = {"adamw", "muon", "soap", "mfac", "dct_adamw"};
  for (const char* type : types) {
    const std::string t = type;
    benchmark::RegisterBenchmark(("model_step/" + t).c_str(), [t](benchmark::State& s) {
      model_step(s, t);
    })->Unit(benchmark::kMillisecond);
    auto* b =
        benchmark::RegisterBenchmark(("matrix_step/" + t).c_str(), [t](benchmark::State& s) { matrix_step(s, t); });
    b->Unit(benchmark::kMillisecond)->Arg(256)->Arg(512)->Arg(1024);
    if (t != "soap") b->Arg(2048);
  }
  benchmark::RegisterBenchmark("ns", ns)->Unit(benchmark::kMillisecond)->Arg(256)->Arg(512)->Arg(1024)->Arg(2048);
  benchmark::RegisterBenchmark("ns_gemm_only", ns_gemm_only)
      ->Unit(benchmark::kMillisecond)
      ->Arg(256)
      ->Arg(512)
      ->Arg(1024)
      ->Arg(2048);
  benchmark::RegisterBenchmark("soap_gemm_only", soap_gemm_only)
      ->Unit(benchmark::kMillisecond)
      ->Arg(256)
      ->Arg(512)
      ->Arg(1024);
  benchmark::RegisterBenchmark("soap_refresh", soap_refresh)
      ->Unit(benchmark::kMillisecond)
      ->Args({512, 1})
      ->Args({512, 1000000});
  benchmark::RegisterBenchmark("diagnostics/model", diagnostics)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("mfac_window", mfac_window)
      ->Unit(benchmark::kMillisecond)
      ->Arg(16)
      ->Arg(64)
      ->Arg(256)
      ->Arg(1024);
  benchmark::RegisterBenchmark("mfac_model", mfac_model)
      ->Unit(benchmark::kMillisecond)
      ->UseManualTime()
      ->Arg(16)
      ->Arg(64)
      ->Arg(256)
      ->Arg(1024);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
