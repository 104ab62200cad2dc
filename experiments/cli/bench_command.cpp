#include "experiments/cli/bench_command.hpp"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/comm/mpi_communicator.hpp"
#include "core/config/loader.hpp"
#include "core/data/task.hpp"
#include "core/nn/cross_entropy.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/machine_peak.hpp"
#include "experiments/cli/threads.hpp"
#include "experiments/trial/memory_estimate.hpp"
#include "experiments/trial/training_step.hpp"
#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"
#include "kernels/sgemm_peak.hpp"
#include "optimizers/clip.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/schedule.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU time of this process (all threads), in seconds: on a shared machine the step's CPU time
// is steadier than its wall time, which includes the time other processes held the core.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Bytes of every array of an optimizer's resumable state (moments, momentum, bases, windows).
double state_bytes(const StateDict& state) {
  double bytes = 0;
  for (const auto& [key, array] : state.entries()) {
    if (const auto* f = std::get_if<std::vector<float>>(&array.data)) bytes += 4.0 * static_cast<double>(f->size());
    if (const auto* d = std::get_if<std::vector<double>>(&array.data)) bytes += 8.0 * static_cast<double>(d->size());
    if (const auto* i = std::get_if<std::vector<std::int64_t>>(&array.data))
      bytes += 8.0 * static_cast<double>(i->size());
  }
  return bytes;
}

template <class T>
void write_binary(const fs::path& path, std::span<const T> data) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size_bytes()));
}

// The step's phases (experiments/trial/training_step.hpp), as indices and report names.
enum Phase { kData, kForward, kBackward, kReduce, kOptimizer, kPhases };
static_assert(kPhases == kStepPhases && kOptimizer == static_cast<int>(StepPhase::optimizer));
constexpr const char* kPhaseNames[kPhases] = {"data", "forward", "backward", "reduce", "optimizer"};

struct BenchResult {
  int threads = 1;        // BLAS threads per rank
  MachinePeak peak;       // measured before MPI started (experiments/cli/machine_peak.hpp)
  double step_s = 0;      // mean wall time of a timed step
  double cpu_step_s = 0;  // mean process CPU time of a timed step
  double phase_s[kPhases] = {};
  kernels::BlasTotals phase_blas[kPhases] = {};      // per timed step: BLAS calls, flops, seconds
  std::vector<kernels::BlasProductTotals> products;  // --blas-products: per timed step, most time first
  std::vector<double> losses;                        // every step, warmup included
  double rss_baseline = 0, rss_peak = 0;
  double bytes_params = 0, bytes_grads = 0, bytes_optimizer = 0, bytes_activations = 0;
  MemoryEstimate estimate;  // the pre-flight estimate of this step (no trainer copy)
  // train.precision: bf16 only: the machine's bf16 limit (kernels::bf16_gemm_rate_gflops), measured
  // after the steps so that its buffers stay out of the step's RSS; 0 when not measured.
  double bf16_peak_gflops = 0;
  bool bf16_peak_correct = false;
};

// The phase clock of `expt bench`: wall time and BLAS totals between the phase boundaries the
// training step reports (experiments/trial/training_step.hpp), summed over the timed steps.
class PhaseClock final : public StepWatcher {
 public:
  void enter(StepPhase phase) override {
    stop();
    current_ = static_cast<int>(phase);
    since_ = Clock::now();
    blas_since_ = kernels::blas_totals();
  }
  // Ends the current phase (the step is over).
  void stop() {
    if (current_ < 0) return;
    const auto now = Clock::now();
    if (timing_) {
      seconds_[current_] += seconds(since_, now);
      blas_[current_] += kernels::blas_totals() - blas_since_;
    }
    current_ = -1;
  }
  void set_timing(bool on) { timing_ = on; }
  double phase_seconds(int p) const { return seconds_[p]; }
  const kernels::BlasTotals& phase_blas(int p) const { return blas_[p]; }

  // --dump: the first batches and the gradient of step 1 before clipping.
  void dump_to(const fs::path& dir, int steps) {
    dump_dir_ = dir;
    dump_steps_ = steps;
  }
  void gradient_ready(std::int64_t step, const data::Batch& batch) override {
    if (dump_dir_.empty() || step > dump_steps_) return;
    write_binary<std::int32_t>(dump_dir_ / fmt::format("inputs{}.i32", step), batch.inputs);
    write_binary<std::int32_t>(dump_dir_ / fmt::format("targets{}.i32", step), batch.targets);
    if (step == 1) write_binary<float>(dump_dir_ / "grads1.f32", grads_);
  }
  void watch_gradients(std::span<const float> grads) { grads_ = grads; }

 private:
  int current_ = -1;
  bool timing_ = false;
  Clock::time_point since_;
  kernels::BlasTotals blas_since_;
  double seconds_[kStepPhases] = {};
  kernels::BlasTotals blas_[kStepPhases] = {};
  fs::path dump_dir_;
  int dump_steps_ = 0;
  std::span<const float> grads_;
};

// Times warmup + steps runs of the trainer's own step (experiments/trial/training_step.hpp): the
// same data slice, forward, backward, gradient reduction (overlapped on several ranks), clipping
// and optimizer as `expt run`; only the training loop's bookkeeping (norms, metrics, evaluation,
// checkpoints) is left out.
BenchResult run_bench(const config::TrialConfig& cfg, comm::Communicator& comm, const BenchOptions& opt,
                      MachinePeak peak, nlohmann::json& info) {
  BenchResult res;
  res.peak = std::move(peak);
  res.threads = resolve_blas_threads(opt.threads);
  kernels::set_blas_threads(res.threads);
  res.rss_baseline = peak_rss_bytes();

  TrainingStep step_fn(cfg, comm, StepOptions{});
  const nn::ParameterStore<float>& store = step_fn.store();
  const int vocab = step_fn.vocab();
  const bool dump = !opt.dump_dir.empty() && comm.rank() == 0;
  const int dump_steps = 2;
  PhaseClock clock;
  if (dump) {
    fs::create_directories(opt.dump_dir);
    write_binary<float>(fs::path(opt.dump_dir) / "params0.f32", store.values());
    clock.dump_to(opt.dump_dir, dump_steps);
    clock.watch_gradients(store.grads());
  }

  const int total = opt.warmup + opt.steps;
  Clock::time_point timed_start = Clock::now();
  double cpu_start = process_cpu_seconds();
  for (int step = 1; step <= total; ++step) {
    if (step == opt.warmup + 1) {
      kernels::set_blas_accounting(true);  // timed steps only
      kernels::set_blas_product_accounting(opt.blas_products);
      clock.set_timing(true);
      timed_start = Clock::now();
      cpu_start = process_cpu_seconds();
    }
    const StepResult r = step_fn.run(step, false, &clock);
    clock.stop();
    if (dump && step == 1) write_binary<float>(fs::path(opt.dump_dir) / "params1.f32", store.values());
    res.losses.push_back(r.loss);
  }
  kernels::set_blas_accounting(false);
  kernels::set_blas_product_accounting(false);
  for (kernels::BlasProductTotals& p : kernels::blas_product_totals()) {
    const kernels::BlasTotals& t = p.totals;
    p.totals = {t.calls / opt.steps, t.flops / opt.steps, t.seconds / opt.steps};
    res.products.push_back(p);
  }
  const double timed = seconds(timed_start, Clock::now());
  res.step_s = timed / opt.steps;
  res.cpu_step_s = (process_cpu_seconds() - cpu_start) / opt.steps;
  for (int p = 0; p < kPhases; ++p) {
    const kernels::BlasTotals& b = clock.phase_blas(p);
    res.phase_s[p] = clock.phase_seconds(p) / opt.steps;
    res.phase_blas[p] = {b.calls / opt.steps, b.flops / opt.steps, b.seconds / opt.steps};
  }
  res.rss_peak = peak_rss_bytes();
  if (cfg.train.precision == "bf16") {
    res.bf16_peak_correct = kernels::bf16_gemm_correct();
    res.bf16_peak_gflops = kernels::bf16_gemm_rate_gflops({1024, 2048}, 3);
  }

  res.bytes_params = 4.0 * static_cast<double>(store.size());
  res.bytes_grads = 4.0 * static_cast<double>(store.size());
  res.bytes_optimizer = state_bytes(step_fn.optimizer().state());
  // The pre-flight estimate (experiments/trial/memory_estimate.hpp) of the training step alone: the
  // analytic bytes are its parameters, gradients and activations with the optimizer's state as built.
  res.estimate = estimate_trial_memory(cfg, vocab, MemoryEstimateOptions{.update_copy = false});
  res.bytes_activations = res.estimate.part("activations");

  info["vocab"] = vocab;
  info["n_params"] = step_fn.model().n_params();
  info["n_params_nonembed"] = step_fn.model().n_params_nonembed();
  info["flops_per_token"] = step_fn.model().flops_per_token();
  info["seq_len"] = step_fn.task().train_length();
  if (dump) {
    nlohmann::json manifest;
    manifest["config_yaml"] = config::to_canonical_yaml(cfg);
    manifest["vocab"] = vocab;
    manifest["batch"] = step_fn.local_batch();
    manifest["seq_len"] = step_fn.task().train_length();
    manifest["dump_steps"] = dump_steps;
    manifest["losses"] = res.losses;
    manifest["lr"] = nlohmann::json::array();
    for (int s = 1; s <= dump_steps; ++s)
      manifest["lr"].push_back(optim::scheduled_lr(cfg.schedule, cfg.optimizer.lr, s, cfg.train.steps));
    for (const auto& p : store.params())
      manifest["params"].push_back({{"name", p.name},
                                    {"shape", p.shape},
                                    {"role", std::string(nn::to_string(p.role))},
                                    {"offset", p.offset},
                                    {"size", p.size}});
    std::ofstream(fs::path(opt.dump_dir) / "manifest.json") << manifest.dump(1) << '\n';
  }
  return res;
}

nlohmann::json to_json(const config::TrialConfig& cfg, const BenchResult& r, const nlohmann::json& info, int ranks,
                       int steps, int warmup) {
  const double tokens_per_step = static_cast<double>(cfg.train.batch_size) * info["seq_len"].get<int>();
  const double tokens_s = tokens_per_step / r.step_s;
  const double flops = info["flops_per_token"].get<double>();
  const double achieved_gflops = flops * tokens_s * 1e-9;
  nlohmann::json j;
  j["config"] = {{"mixer", cfg.model.mixer.type}, {"optimizer", cfg.optimizer.type},
                 {"d_model", cfg.model.d_model},  {"n_layers", cfg.model.n_layers},
                 {"batch", cfg.train.batch_size}, {"seq_len", info["seq_len"]},
                 {"vocab", info["vocab"]},        {"ranks", ranks},
                 {"threads_per_rank", r.threads}};
  j["n_params"] = info["n_params"];
  j["n_params_nonembed"] = info["n_params_nonembed"];
  j["steps"] = steps;
  j["warmup"] = warmup;
  j["step_s"] = r.step_s;
  j["steps_per_s"] = 1.0 / r.step_s;
  j["tokens_per_s"] = tokens_s;
  j["cpu_step_s"] = r.cpu_step_s;
  j["tokens_per_cpu_s"] = tokens_per_step / r.cpu_step_s;
  j["flops_per_token"] = flops;
  j["achieved_gflops"] = achieved_gflops;
  j["machine"] = kernels::gemm_machine_summary();
  j["gemm_backend"] = kernels::gemm_backend_name(kernels::gemm_backend());
  j["sgemm_peak_gflops"] = r.peak.gflops;  // the machine's limit: the best correct probe
  j["sgemm_peak_source"] = r.peak.source;
  j["sgemm_probes"] = to_json(r.peak);
  j["backend_sgemm_gflops"] = r.peak.backend_gflops;
  // Against every core the step may use; CPU time already sums the threads of a process.
  j["mfu"] = achieved_gflops / (ranks * r.threads * r.peak.gflops);
  j["mfu_cpu"] = flops * tokens_per_step / r.cpu_step_s * 1e-9 / (ranks * r.peak.gflops);
  // The same against the sgemm of the backend in use (the "same-library" figure).
  j["mfu_backend"] = achieved_gflops / (ranks * r.threads * r.peak.backend_gflops);
  // bf16 mode: the same against the bf16 limit (null in fp32, or when the bf16 probe was wrong).
  const bool bf16_peak = r.bf16_peak_gflops > 0 && r.bf16_peak_correct;
  j["bf16_peak_gflops"] = r.bf16_peak_gflops > 0 ? nlohmann::json(r.bf16_peak_gflops) : nlohmann::json(nullptr);
  j["bf16_peak_correct"] = r.bf16_peak_gflops > 0 ? nlohmann::json(r.bf16_peak_correct) : nlohmann::json(nullptr);
  j["mfu_bf16"] =
      bf16_peak ? nlohmann::json(achieved_gflops / (ranks * r.threads * r.bf16_peak_gflops)) : nlohmann::json(nullptr);
  double phase_total = 0;
  for (double s : r.phase_s) phase_total += s;
  const auto rate = [](double count, double s) { return s > 0 ? count / s * 1e-9 : 0.0; };
  kernels::BlasTotals blas;
  for (int p = 0; p < kPhases; ++p) {
    const kernels::BlasTotals& b = r.phase_blas[p];
    j["phases"][kPhaseNames[p]] = {{"s", r.phase_s[p]},     {"share", phase_total > 0 ? r.phase_s[p] / r.step_s : 0.0},
                                   {"blas_calls", b.calls}, {"blas_flops", b.flops},
                                   {"blas_s", b.seconds},   {"blas_gflops", rate(b.flops, b.seconds)}};
    blas += b;
  }
  j["blas"] = {{"calls", blas.calls},
               {"flops", blas.flops},
               {"s", blas.seconds},
               {"gflops", rate(blas.flops, blas.seconds)},
               {"share", blas.seconds / r.step_s},
               {"outside_s", r.step_s - blas.seconds}};
  if (!r.products.empty()) {
    j["blas_products"] = nlohmann::json::array();
    for (const kernels::BlasProductTotals& p : r.products)
      j["blas_products"].push_back({{"product", kernels::describe(p.product)},
                                    {"m", p.product.m},
                                    {"n", p.product.n},
                                    {"k", p.product.k},
                                    {"calls", p.totals.calls},
                                    {"flops", p.totals.flops},
                                    {"s", p.totals.seconds},
                                    {"gflops", rate(p.totals.flops, p.totals.seconds)},
                                    {"share_of_blas", blas.seconds > 0 ? p.totals.seconds / blas.seconds : 0.0}});
  }
  // The optimizer's products against the model's: at the rate the forward and backward products
  // ran, how long the optimizer's products would take and what share of the step that would be.
  // It separates arithmetic (more flops) from inefficiency (a slower rate) in the optimizer share.
  const kernels::BlasTotals& fwd = r.phase_blas[kForward];
  const kernels::BlasTotals& bwd = r.phase_blas[kBackward];
  const kernels::BlasTotals& optb = r.phase_blas[kOptimizer];
  const double model_rate = rate(fwd.flops + bwd.flops, fwd.seconds + bwd.seconds);
  const double at_model_rate = model_rate > 0 ? optb.flops / (model_rate * 1e9) : 0.0;
  j["optimizer_arithmetic"] = {
      {"flops", optb.flops},
      {"flops_over_model", fwd.flops + bwd.flops > 0 ? optb.flops / (fwd.flops + bwd.flops) : 0.0},
      {"model_blas_gflops", model_rate},
      {"s_at_model_rate", at_model_rate},
      {"share_at_model_rate", at_model_rate / (r.step_s - r.phase_s[kOptimizer] + at_model_rate)}};
  const double analytic = r.bytes_params + r.bytes_grads + r.bytes_optimizer + r.bytes_activations;
  j["memory"] = {{"peak_rss_bytes", r.rss_peak},
                 {"baseline_rss_bytes", r.rss_baseline},
                 {"analytic_bytes", analytic},
                 {"params_bytes", r.bytes_params},
                 {"grads_bytes", r.bytes_grads},
                 {"optimizer_bytes", r.bytes_optimizer},
                 {"activations_bytes", r.bytes_activations},
                 {"rss_over_analytic", r.rss_peak / analytic},
                 {"rss_above_baseline_over_analytic", (r.rss_peak - r.rss_baseline) / analytic},
                 {"estimate_bytes", r.estimate.total()},
                 {"rss_over_estimate", r.rss_peak / r.estimate.total()}};
  for (const MemoryPart& p : r.estimate.parts) j["memory"]["estimate_parts"][p.name] = p.bytes;
  j["losses"] = r.losses;
  return j;
}

std::string to_table(const nlohmann::json& j) {
  const auto& c = j["config"];
  const auto mib = [](double b) { return b / (1024.0 * 1024.0); };
  std::string s;
  s += fmt::format(
      "expt bench: {} / {}, d_model {}, {} layers, batch {} x length {}, vocab {}, {} rank(s) x {} thread(s)\n",
      c["mixer"].get<std::string>(), c["optimizer"].get<std::string>(), c["d_model"].get<int>(),
      c["n_layers"].get<int>(), c["batch"].get<int>(), c["seq_len"].get<int>(), c["vocab"].get<int>(),
      c["ranks"].get<int>(), c["threads_per_rank"].get<int>());
  s += fmt::format("  parameters      {} ({} non-embedding)\n", j["n_params"].get<std::int64_t>(),
                   j["n_params_nonembed"].get<std::int64_t>());
  s += fmt::format("  steps           {} timed after {} warmup\n", j["steps"].get<int>(), j["warmup"].get<int>());
  s += fmt::format("  step            {:.2f} ms ({:.2f} steps/s)\n", 1e3 * j["step_s"].get<double>(),
                   j["steps_per_s"].get<double>());
  s += fmt::format("  tokens/s        {:.0f} (per CPU second of the process: {:.0f})\n",
                   j["tokens_per_s"].get<double>(), j["tokens_per_cpu_s"].get<double>());
  s += fmt::format("  model FLOPs     {:.3g} per token, {:.2f} GFLOP/s\n", j["flops_per_token"].get<double>(),
                   j["achieved_gflops"].get<double>());
  s += fmt::format("  machine         {}\n", j["machine"].get<std::string>());
  s += "  sgemm probes    1 thread, n = 512 and 1024, best of 5:\n";
  for (const auto& p : j["sgemm_probes"]) {
    const std::string what = p["backend"].get<std::string>() + " " + p["kernel"].get<std::string>() + " (" +
                             p["how"].get<std::string>() + ")";
    if (!p["error"].get<std::string>().empty())
      s += fmt::format("                  {}: {}\n", what, p["error"].get<std::string>());
    else
      s += fmt::format("                  {}: {:.2f} GFLOP/s{}\n", what, p["gflops"].get<double>(),
                       p["correct"].get<bool>() ? "" : " (WRONG RESULTS: not counted)");
  }
  s += fmt::format("  sgemm peak      {:.2f} GFLOP/s, the machine's fp32 limit: {}\n",
                   j["sgemm_peak_gflops"].get<double>(), j["sgemm_peak_source"].get<std::string>());
  s += fmt::format(
      "  MFU             {:.1f} % of ranks x threads x sgemm peak (by CPU time: {:.1f} %); {:.1f} % of the {} "
      "backend's own sgemm ({:.2f} GFLOP/s)\n",
      100 * j["mfu"].get<double>(), 100 * j["mfu_cpu"].get<double>(), 100 * j["mfu_backend"].get<double>(),
      j["gemm_backend"].get<std::string>(), j["backend_sgemm_gflops"].get<double>());
  if (!j["bf16_peak_gflops"].is_null()) {
    s += fmt::format(
        "  bf16 peak       {:.2f} GFLOP/s{}, the machine's bf16 limit: gemm_bf16 on oneDNN {} (operands converted "
        "as in the step), n = 1024 and 2048, best of 3\n",
        j["bf16_peak_gflops"].get<double>(), j["bf16_peak_correct"].get<bool>() ? "" : " (WRONG RESULTS: no MFU)",
        kernels::onednn_isa_name());
    if (!j["mfu_bf16"].is_null())
      s += fmt::format(
          "  MFU (bf16)      {:.1f} % of ranks x threads x bf16 peak (the products outside Linear stay fp32)\n",
          100 * j["mfu_bf16"].get<double>());
  }
  s += "  phase           ms/step   share    BLAS ms  BLAS GFLOP  GFLOP/s  calls\n";
  for (const char* p : kPhaseNames) {
    const auto& ph = j["phases"][p];
    s += fmt::format("    {:<13} {:8.2f}  {:5.1f} %  {:8.2f}  {:10.3f}  {:7.1f}  {:5}\n", p,
                     1e3 * ph["s"].get<double>(), 100 * ph["share"].get<double>(), 1e3 * ph["blas_s"].get<double>(),
                     1e-9 * ph["blas_flops"].get<double>(), ph["blas_gflops"].get<double>(),
                     ph["blas_calls"].get<std::int64_t>());
  }
  const auto& blas = j["blas"];
  s +=
      fmt::format("  BLAS            {:.2f} ms/step ({:.1f} % of the step) at {:.1f} GFLOP/s; outside BLAS {:.2f} ms\n",
                  1e3 * blas["s"].get<double>(), 100 * blas["share"].get<double>(), blas["gflops"].get<double>(),
                  1e3 * blas["outside_s"].get<double>());
  if (j.contains("blas_products")) {
    s += "  BLAS products   per step, the most time first      calls      ms  GFLOP/s  share of BLAS\n";
    for (const auto& p : j["blas_products"])
      s += fmt::format("    {:<44} {:7}  {:7.2f}  {:7.1f}  {:5.1f} %\n", p["product"].get<std::string>(),
                       p["calls"].get<std::int64_t>(), 1e3 * p["s"].get<double>(), p["gflops"].get<double>(),
                       100 * p["share_of_blas"].get<double>());
  }
  const auto& oa = j["optimizer_arithmetic"];
  if (oa["flops"].get<double>() > 0)
    s += fmt::format(
        "  optimizer       products {:.3f} GFLOP/step = {:.1f} % of the model's; at the model's BLAS rate "
        "{:.2f} ms = {:.1f} % of the step\n",
        1e-9 * oa["flops"].get<double>(), 100 * oa["flops_over_model"].get<double>(),
        1e3 * oa["s_at_model_rate"].get<double>(), 100 * oa["share_at_model_rate"].get<double>());
  const auto& m = j["memory"];
  s += fmt::format("  peak RSS        {:.1f} MiB (process baseline before the model {:.1f} MiB)\n",
                   mib(m["peak_rss_bytes"].get<double>()), mib(m["baseline_rss_bytes"].get<double>()));
  s += fmt::format(
      "  analytic        {:.1f} MiB = params {:.1f} + grads {:.1f} + optimizer {:.1f} + activations {:.1f}\n",
      mib(m["analytic_bytes"].get<double>()), mib(m["params_bytes"].get<double>()), mib(m["grads_bytes"].get<double>()),
      mib(m["optimizer_bytes"].get<double>()), mib(m["activations_bytes"].get<double>()));
  s += fmt::format("  RSS / analytic  {:.2f} (above baseline: {:.2f})\n", m["rss_over_analytic"].get<double>(),
                   m["rss_above_baseline_over_analytic"].get<double>());
  std::string parts;
  for (const auto& [name, bytes] : m["estimate_parts"].items())
    parts += fmt::format("{}{} {:.1f}", parts.empty() ? "" : " + ", name, mib(bytes.get<double>()));
  s += fmt::format("  estimate        {:.1f} MiB = {} (pre-flight, as `expt validate`); RSS / estimate {:.2f}\n",
                   mib(m["estimate_bytes"].get<double>()), parts, m["rss_over_estimate"].get<double>());
  return s;
}

}  // namespace

int bench_command(int argc, char** argv, const std::string& config_path, const std::vector<std::string>& sets,
                  const BenchOptions& options) {
  // The machine's limit first: its probes start child processes, which is safe before MPI_Init.
  MachinePeak peak;
  try {
    peak = measure_machine_peak();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt bench: %s\n", e.what());
    return kExitFailed;
  }
  const comm::WorldCommunicator world = comm::open_world_communicator(&argc, &argv);
  comm::Communicator* comm = world.comm.get();
  const int rank = comm->rank();
  config::TrialConfig cfg;
  try {
    cfg = config::load_trial_config(config_path, sets);
  } catch (const config::ConfigErrors& e) {
    if (rank == 0) config::report_errors(e);
    return kExitUsage;
  }
  if (options.steps < 1 || options.warmup < 0) {
    if (rank == 0) std::fprintf(stderr, "expt bench: --steps must be >= 1 and --warmup >= 0\n");
    return kExitUsage;
  }
  try {
    resolve_blas_threads(options.threads);
  } catch (const std::invalid_argument& e) {
    if (rank == 0) std::fprintf(stderr, "expt bench: %s\n", e.what());
    return kExitUsage;
  }
  if (!options.dump_dir.empty() && options.warmup + options.steps < 2) {
    if (rank == 0) std::fprintf(stderr, "expt bench: --dump needs at least 2 steps (warmup + steps)\n");
    return kExitUsage;
  }
  try {
    nlohmann::json info;
    const BenchResult result = run_bench(cfg, *comm, options, std::move(peak), info);
    if (rank == 0) {
      const auto j = to_json(cfg, result, info, comm->size(), options.steps, options.warmup);
      if (options.format == "json")
        std::printf("%s\n", j.dump(2).c_str());
      else
        std::fputs(to_table(j).c_str(), stdout);
    }
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace expt::experiments
