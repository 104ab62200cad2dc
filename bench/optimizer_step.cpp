// Optimizer step time, single BLAS thread, fp32 parameters (docs/optimizers.md "Performance"),
// each against its BLAS floor: the same BLAS calls with the same shapes, alone, in the same run.
//   model_step/<type>        one step over the parameters of the 4-layer d_model 256 model of
//                            kModelYaml (attention, SwiGLU 768, 3.3 M parameters; M-FAC window 16)
//   matrix_step/<type>/n     one step on a single n x n matrix (role matrix); M-FAC window 16;
//                            SOAP only up to 1024 (its rotations cost 8·n³ flops per step)
//   model_floor/<type>, matrix_floor/<type>/n
//                            the BLAS calls the step makes, alone (Muon: the 3 syrk/syrk/symm per
//                            NS iteration; SOAP: the rotation sgemms and statistics ssyrks plus,
//                            every precondition_frequency steps, the refresh's rotations (sgemm)
//                            and P·Q (dgemm); DCT: the projection sgemms plus, every refresh_every
//                            steps, the full G·Q).
//                            Steps counted as in the optimizer, so refreshes are amortised alike.
//                            bench/optimizer_step.sh prints step / floor per optimizer.
//   matrix_step/soap_per_step/n, matrix_floor/soap_per_step/n
//                            SOAP without refreshes (precondition_frequency 10⁶): the per-step part
//   ns/m/n, ns_gemm_only/n   Muon's Newton–Schulz (5 Keller-Jordan steps) on m x n, and 15 sgemm
//                            calls on n x n (the NS shapes with gemm in place of syrk/symm)
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
#include "optimizers/dct_adamw.hpp"
#include "optimizers/diagnostics.hpp"
#include "optimizers/mfac.hpp"
#include "optimizers/muon.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/soap.hpp"

namespace {

namespace k = expt::kernels;
constexpr int kNoRefresh = 1000000;
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

// The bench model's parameters (kModelYaml) in `store`, allocated; with `filled`, the values
// initialised as in training and the gradients Gaussian (1e-3).
void build_model_params(ParameterStore<float>& store, bool filled) {
  const auto cfg = expt::config::parse_trial_config(kModelYaml, "bench", {});
  const int vocab = expt::data::make_task(cfg.task)->vocab_size();
  expt::nn::Model<float> model(cfg.model, vocab, store);
  store.allocate();
  if (!filled) return;
  model.init_parameters(1);
  fill_gaussian(store.grads(), 2, 1e-3f);
}

// One n x n matrix parameter `name` in `store`, allocated, gradients Gaussian (1e-3) and, with
// `values`, values Gaussian (0.02).
void build_matrix_param(ParameterStore<float>& store, const std::string& name, int n, bool values) {
  store.add(name, {n, n}, expt::nn::ParamRole::matrix);
  store.allocate();
  if (values) fill_gaussian(store.values(), 1, 0.02f);
  fill_gaussian(store.grads(), 2, 1e-3f);
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
  ParameterStore<float> store;
  build_model_params(store, true);
  auto opt = expt::optim::make_optimizer(optimizer_config(type), store.params());
  state.counters["params"] = static_cast<double>(store.size());
  run_steps(state, *opt, store);
}

void diagnostics(benchmark::State& state) {
  ParameterStore<float> store;
  build_model_params(store, true);
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
  build_matrix_param(store, "blocks.0.mlp.up_proj.weight", n, true);
  auto opt = expt::optim::make_optimizer(optimizer_config(type), store.params());
  run_steps(state, *opt, store);
}

void ns(benchmark::State& state) {
  k::set_blas_threads(1);
  const int m = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1));
  std::vector<float> u(static_cast<std::size_t>(m) * n), out(u.size()), ws(k::newton_schulz_workspace_size(m, n));
  fill_gaussian(u, 3, 1.0f);
  const k::NsCoefficients steps[5] = {k::kKellerJordanNs, k::kKellerJordanNs, k::kKellerJordanNs, k::kKellerJordanNs,
                                      k::kKellerJordanNs};
  for (auto _ : state) {
    k::newton_schulz<float>(u.data(), m, n, steps, 1e-7, out.data(), ws);
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

// The BLAS work of one optimizer over a parameter set, replayed alone: one call of run(t) does
// the BLAS calls of optimizer step t, with the same shapes, transposes and precision.
class BlasFloor {
 public:
  BlasFloor(const std::string& type, const expt::config::OptimizerConfig& cfg,
            const std::vector<expt::nn::ParamInfo>& params, expt::optim::Optimizer& opt)
      : type_(type), cfg_(cfg) {
    if (type == "muon") {
      for (std::size_t i : dynamic_cast<expt::optim::Muon&>(opt).main_params())
        shapes_.push_back({static_cast<int>(params[i].rows()), static_cast<int>(params[i].cols()), true, true});
    } else if (type == "soap") {
      auto& soap = dynamic_cast<expt::optim::Soap&>(opt);
      for (std::size_t i = 0; i < params.size(); ++i)
        for (const auto& b : soap.blocks(i))
          if (b.left || b.right) shapes_.push_back({b.rows, b.cols, b.left, b.right});
    } else if (type == "dct_adamw") {
      for (std::size_t i : dynamic_cast<expt::optim::DctAdamW&>(opt).main_params())
        shapes_.push_back({static_cast<int>(params[i].rows()), static_cast<int>(params[i].cols()), true, true});
    }
    std::size_t largest = 1;
    for (const auto& s : shapes_)
      largest = std::max<std::size_t>(largest, static_cast<std::size_t>(std::max(s.m, s.n)) * std::max(s.m, s.n));
    for (auto* v : {&f1_, &f2_, &f3_, &f4_}) v->assign(largest, 1e-3f);
    for (auto* v : {&d1_, &d2_, &d3_}) v->assign(largest, 1e-3);
  }
  bool empty() const { return shapes_.empty(); }

  void run(std::int64_t t) {
    using k::gemm;
    using k::Trans;
    for (const auto& s : shapes_) {
      if (type_ == "muon") {
        const int r = std::min(s.m, s.n), c = std::max(s.m, s.n);
        if (cfg_.ns_method == expt::config::NsMethod::gram && c >= k::kGramMinAspect * r)
          gram_ns(r, c);
        else
          for (int it = 0; it < cfg_.ns_steps; ++it) {
            k::syrk_upper<float>(r, c, 1.0f, f1_.data(), c, 0.0f, f2_.data(), r);
            k::syrk_upper<float>(r, r, 1.0f, f2_.data(), r, 0.0f, f3_.data(), r);
            k::symm_upper_left<float>(r, c, 1.0f, f3_.data(), r, f1_.data(), c, 1.0f, f4_.data(), c);
          }
      } else if (type_ == "soap") {
        // Per step: the float rotations (sgemm) and the statistics (ssyrk, upper triangle); every
        // precondition_frequency steps the refresh: M back and forth (sgemm), P·Q per side (dgemm).
        const int h = s.m, w = s.n;
        const auto rotate = [&](bool to_basis) {
          if (s.left)
            gemm<float>(to_basis ? Trans::yes : Trans::no, Trans::no, h, w, h, 1.0f, f1_.data(), h, f2_.data(), w, 0.0f,
                        f3_.data(), w);
          if (s.right)
            gemm<float>(Trans::no, to_basis ? Trans::no : Trans::yes, h, w, w, 1.0f, f3_.data(), w, f1_.data(), w, 0.0f,
                        f4_.data(), w);
        };
        rotate(true);
        rotate(false);
        if (s.left) k::syrk_upper<float>(h, w, 1.0f, f2_.data(), w, 0.0f, f3_.data(), h);
        if (s.right) k::syrk_upper_trans<float>(w, h, 1.0f, f2_.data(), w, 0.0f, f3_.data(), w);
        // The optimizer's own counter lags run_steps' by one (its first call only initialises).
        if ((t - 1) % cfg_.precondition_frequency == 0) {
          rotate(false);
          rotate(true);
          for (int side : {s.left ? h : 0, s.right ? w : 0})
            if (side > 0)
              gemm<double>(Trans::no, Trans::no, side, side, side, 1.0, d1_.data(), side, d2_.data(), side, 0.0,
                           d3_.data(), side);
        }
      } else if (type_ == "dct_adamw") {
        const bool right = s.m >= s.n;
        const int m = s.m, n = s.n, sd = std::min(m, n), r = std::min(cfg_.rank, sd);
        const bool refresh = t == 1 || t % cfg_.refresh_every == 0;
        if (refresh && right)
          gemm<float>(Trans::no, Trans::no, m, sd, n, 1.0f, f1_.data(), n, f2_.data(), sd, 0.0f, f3_.data(), sd);
        else if (refresh)
          gemm<float>(Trans::yes, Trans::no, sd, n, m, 1.0f, f2_.data(), sd, f1_.data(), n, 0.0f, f3_.data(), n);
        else if (right)
          gemm<float>(Trans::no, Trans::no, m, r, n, 1.0f, f1_.data(), n, f2_.data(), r, 0.0f, f3_.data(), r);
        else
          gemm<float>(Trans::yes, Trans::no, r, n, m, 1.0f, f2_.data(), r, f1_.data(), n, 0.0f, f3_.data(), n);
        if (right)
          gemm<float>(Trans::no, Trans::yes, m, n, r, 1.0f, f3_.data(), r, f2_.data(), r, 0.0f, f4_.data(), n);
        else
          gemm<float>(Trans::no, Trans::no, m, n, r, 1.0f, f2_.data(), r, f3_.data(), n, 0.0f, f4_.data(), n);
      }
    }
  }

 private:
  struct Shape {
    int m, n;
    bool left, right;
  };

  // The BLAS calls of kernels::newton_schulz_gram on an r x c matrix (kernels/newton_schulz.cpp):
  // G = X·Xᵀ; per iteration R² (syrk), Z·Q (symm, not on the first iteration of a Gram run) and the
  // R update Z² (syrk) + Z²·R (symm) unless the run ends or restarts next; a restart is Q·X (gemm)
  // + a fresh X·Xᵀ; at the end X = Q·X_0 (gemm).
  void gram_ns(int r, int c) {
    const int steps = cfg_.ns_steps, period = k::kGramRestartPeriod;
    const auto restarts = [&](int j) { return j > 0 && j % period == 0; };
    k::syrk_upper<float>(r, c, 1.0f, f1_.data(), c, 0.0f, f2_.data(), r);
    bool fresh = true;
    for (int j = 0; j < steps; ++j) {
      if (restarts(j)) {
        k::gemm<float>(k::Trans::no, k::Trans::no, r, c, r, 1.0f, f3_.data(), r, f1_.data(), c, 0.0f, f4_.data(), c);
        k::syrk_upper<float>(r, c, 1.0f, f4_.data(), c, 0.0f, f2_.data(), r);
        fresh = true;
      }
      k::syrk_upper<float>(r, r, 1.0f, f2_.data(), r, 0.0f, f3_.data(), r);
      if (!fresh) k::symm_upper_left<float>(r, r, 1.0f, f3_.data(), r, f2_.data(), r, 0.0f, f4_.data(), r);
      fresh = false;
      if (j + 1 < steps && !restarts(j + 1)) {
        k::syrk_upper<float>(r, r, 1.0f, f3_.data(), r, 0.0f, f4_.data(), r);
        k::symm_upper_left<float>(r, r, 1.0f, f4_.data(), r, f2_.data(), r, 0.0f, f3_.data(), r);
      }
    }
    k::gemm<float>(k::Trans::no, k::Trans::no, r, c, r, 1.0f, f3_.data(), r, f1_.data(), c, 0.0f, f4_.data(), c);
  }
  std::string type_;
  expt::config::OptimizerConfig cfg_;
  std::vector<Shape> shapes_;
  std::vector<float> f1_, f2_, f3_, f4_;
  std::vector<double> d1_, d2_, d3_;
};

// The floor of `type` on the parameters of `store`, with the step counting of run_steps.
void run_floor(benchmark::State& state, const std::string& type, const expt::config::OptimizerConfig& cfg,
               ParameterStore<float>& store) {
  auto opt = expt::optim::make_optimizer(cfg, store.params());
  BlasFloor floor(type, cfg, store.params(), *opt);
  if (floor.empty()) {
    state.SkipWithError("no BLAS work");
    return;
  }
  std::int64_t t = 1;  // run_steps' first call (SOAP's initialisation) is outside the timing
  for (auto _ : state) {
    floor.run(++t);
    benchmark::ClobberMemory();
  }
}

void model_floor(benchmark::State& state, const std::string& type) {
  k::set_blas_threads(1);
  ParameterStore<float> store;
  build_model_params(store, false);
  run_floor(state, type, optimizer_config(type), store);
}

void matrix_floor(benchmark::State& state, const std::string& type, int frequency) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  ParameterStore<float> store;
  store.add("blocks.0.mlp.up_proj.weight", {n, n}, expt::nn::ParamRole::matrix);
  store.allocate();
  auto cfg = optimizer_config(type);
  if (frequency > 0) cfg.precondition_frequency = frequency;
  run_floor(state, type, cfg, store);
}

void soap_per_step(benchmark::State& state) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  ParameterStore<float> store;
  build_matrix_param(store, "blocks.0.mlp.up_proj.weight", n, true);
  auto cfg = optimizer_config("soap");
  cfg.precondition_frequency = kNoRefresh;
  auto opt = expt::optim::make_optimizer(cfg, store.params());
  run_steps(state, *opt, store);
}

void soap_refresh(benchmark::State& state) {
  k::set_blas_threads(1);
  const int n = static_cast<int>(state.range(0));
  ParameterStore<float> store;
  build_matrix_param(store, "w", n, false);
  auto cfg = optimizer_config("soap");
  cfg.precondition_frequency = static_cast<int>(state.range(1));
  auto opt = expt::optim::make_optimizer(cfg, store.params());
  run_steps(state, *opt, store);
}

void mfac_window(benchmark::State& state) {
  k::set_blas_threads(1);
  ParameterStore<float> store;
  build_matrix_param(store, "w", 256, false);
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
  ParameterStore<float> store;
  build_model_params(store, true);
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
    const bool has_floor = t == "muon" || t == "soap" || t == "dct_adamw";
    benchmark::RegisterBenchmark(("model_step/" + t).c_str(), [t](benchmark::State& s) {
      model_step(s, t);
    })->Unit(benchmark::kMillisecond);
    if (has_floor)
      benchmark::RegisterBenchmark(("model_floor/" + t).c_str(), [t](benchmark::State& s) {
        model_floor(s, t);
      })->Unit(benchmark::kMillisecond);
    for (const std::string kind : {"step", "floor"}) {
      if (kind == "floor" && !has_floor) continue;
      auto* b = benchmark::RegisterBenchmark(("matrix_" + kind + "/" + t).c_str(), [t, kind](benchmark::State& s) {
        if (kind == "step")
          matrix_step(s, t);
        else
          matrix_floor(s, t, 0);
      });
      b->Unit(benchmark::kMillisecond)->Arg(256)->Arg(512)->Arg(1024);
      if (t != "soap") b->Arg(2048);
    }
  }
  for (int n : {256, 512, 1024}) {
    benchmark::RegisterBenchmark("matrix_step/soap_per_step", soap_per_step)->Unit(benchmark::kMillisecond)->Arg(n);
    benchmark::RegisterBenchmark("matrix_floor/soap_per_step",
                                 [](benchmark::State& s) { matrix_floor(s, "soap", kNoRefresh); })
        ->Unit(benchmark::kMillisecond)
        ->Arg(n);
  }
  auto* ns_bench = benchmark::RegisterBenchmark("ns", ns)->Unit(benchmark::kMillisecond);
  for (int n : {256, 512, 1024, 2048}) ns_bench->Args({n, n});
  ns_bench->Args({768, 256})->Args({256, 768});  // the model's tall (transposed) and wide MLP matrices
  benchmark::RegisterBenchmark("ns_gemm_only", ns_gemm_only)
      ->Unit(benchmark::kMillisecond)
      ->Arg(256)
      ->Arg(512)
      ->Arg(1024)
      ->Arg(2048);
  benchmark::RegisterBenchmark("soap_refresh", soap_refresh)
      ->Unit(benchmark::kMillisecond)
      ->Args({512, 1})
      ->Args({512, kNoRefresh});
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
