#include "experiments/trial/memory_estimate.hpp"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <span>
#include <sstream>

#include "core/data/task.hpp"
#include "core/nn/mlp.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/util/allocation.hpp"
#include "kernels/attention_tiled.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::experiments {

namespace {

constexpr double kFloat = sizeof(float);
constexpr int kMlpRowTile = 256;  // core/nn/mlp.cpp's kRowTile

// The floats per token a mixer keeps for its backward, and the floats per token its backward takes
// from the workspace (the header's table).
struct MixerFloats {
  double saved = 0;
  double backward = 0;
};

MixerFloats mixer_floats(const config::ModelConfig& cfg) {
  const config::MixerConfig& m = cfg.mixer;
  const double d = cfg.d_model, H = m.heads;
  MixerFloats f;
  if (m.type == "attention") {
    f.saved = 4 * d + H;
    f.backward = 4 * d;
  } else if (m.type == "gla") {
    const double dk = static_cast<int>(d * m.expand_k), dv = static_cast<int>(d * m.expand_v), r = m.gate_low_rank_dim;
    const double gate = m.use_output_gate ? dv : 0;
    f.saved = (2 * dk + dv) + r + 2 * dk + dv + dv + gate + H + (m.use_short_conv ? 2 * dk + dv : 0);
    f.backward = 2 * dv + 3 * dk + r + gate + (m.use_short_conv ? std::max(dk, dv) : 0) + dv;
  } else if (m.type == "deltanet" || m.type == "deltaproduct" || m.type == "gated_deltaproduct") {
    const bool product = m.type != "deltanet";
    const double nh = product ? m.num_householder : 1;
    const double dk = product ? (m.head_dim > 0 ? m.head_dim : d / H) : static_cast<int>(d * m.expand_k) / H;
    const double dv = product ? dk * m.expand_v : static_cast<int>(d * m.expand_v) / H;
    const double q = H * dk, k = nh * H * dk, v = nh * H * dv, o = H * dv;
    const bool forget = m.use_forget_gate || m.type == "gated_deltaproduct";
    const double gate = m.use_output_gate ? o : 0;
    f.saved = 2 * (q + k + v) + q + k + H + 3 * nh * H + 2 * o + H + gate + (forget ? 2 * H : 0);
    f.backward = o + q + k + v + nh * H + std::max({q, k, v}) + gate + (forget ? H : 0) + o;
  } else if (m.type == "base_conv") {
    f.saved = 2 * d;     // c, p
    f.backward = 2 * d;  // dc, dp
  }
  return f;
}

std::string count_times(double count, double bytes_each) { return fmt::format("{:.0f} x {:.0f} B", count, bytes_each); }

std::optional<double> read_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(word.c_str(), &end);
  if (end == word.c_str()) return std::nullopt;
  return value;
}

std::optional<double> mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      double kib = 0;
      if (fields >> kib) return kib * 1024.0;
    }
  return std::nullopt;
}

// A counter of a cgroup's memory.stat (0 when absent).
double stat_counter(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string key;
  double value = 0;
  while (in >> key >> value)
    if (key == name) return value;
  return 0;
}

// The cgroup this process is in (v2: the "0::/path" line of /proc/self/cgroup).
std::string cgroup_v2_dir() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
  return "/sys/fs/cgroup";
}

}  // namespace

double MemoryEstimate::total() const {
  double sum = 0;
  for (const MemoryPart& p : parts) sum += p.bytes;
  return sum;
}

double MemoryEstimate::part(const std::string& name) const {
  for (const MemoryPart& p : parts)
    if (p.name == name) return p.bytes;
  return 0;
}

MemoryEstimate estimate_trial_memory(const config::TrialConfig& cfg, std::optional<int> vocab_in,
                                     const MemoryEstimateOptions& options) {
  int vocab = cfg.model.vocab_size;
  std::vector<int> lengths;
  {
    const auto task = data::make_task(cfg.task);
    if (vocab <= 0) vocab = vocab_in ? *vocab_in : task->vocab_size();
    lengths = task->eval_lengths();
    lengths.push_back(task->train_length());
  }
  // Registering the parameters gives their shapes; nothing is allocated.
  nn::ParameterStore<float> store;
  const nn::Model<float> model(cfg.model, vocab, store);
  const double N = static_cast<double>(store.size());

  MemoryEstimate e;
  e.n_params = static_cast<std::int64_t>(store.size());
  e.ranks = cfg.train.ranks;
  const int shards = config::deterministic_micro_shards(cfg.train.batch_size);
  e.local_batch = cfg.train.deterministic ? cfg.train.batch_size / shards : cfg.train.batch_size / cfg.train.ranks;
  e.length = *std::max_element(lengths.begin(), lengths.end());
  const auto add = [&e](std::string name, double bytes, std::string detail) {
    if (bytes > 0) e.parts.push_back({std::move(name), bytes, std::move(detail)});
  };

  add("parameters", kFloat * N, count_times(N, kFloat));
  add("gradients", kFloat * N, count_times(N, kFloat));
  if (options.update_copy) add("update copy", kFloat * N, count_times(N, kFloat));
  const optim::OptimizerMemory opt = optim::optimizer_memory(cfg.optimizer, store.params());
  add("optimizer", opt.total(),
      fmt::format("{} state {} + scratch {}", cfg.optimizer.type, util::format_bytes(opt.state),
                  util::format_bytes(opt.scratch)));
  if (cfg.train.deterministic) {
    const int per_rank = std::max(1, shards / cfg.train.ranks);
    const double levels = std::floor(std::log2(per_rank)) + 1 + (cfg.train.ranks > 1 ? cfg.train.ranks : 0);
    add("reduction", kFloat * N * levels, fmt::format("{:.0f} gradient copies (deterministic tree)", levels));
  }

  // Activations and the backward workspace at the largest forward of a rank.
  const double rows = static_cast<double>(e.local_batch) * e.length;
  const double d = cfg.model.d_model;
  const bool has_mlp = cfg.model.mlp.type != "none";
  const double I = has_mlp ? nn::mlp_intermediate_size(cfg.model.mlp, cfg.model.d_model) : 0;
  const double mlp_saved = (cfg.model.mlp.type == "swiglu" ? 3.0 : 2.0) * I;
  // Summed over the blocks, each with its own mixer (per-layer mixers, decision 143); the workspace
  // holds one block's backward at a time, the largest.
  double blocks = 0, mixer_backward = 0;
  double fixed = 0;  // independent of the batch
  for (int l = 0; l < cfg.model.n_layers; ++l) {
    const config::ModelConfig layer = cfg.model.for_layer(l);
    const bool has_mixer = layer.mixer.type != "none";
    const MixerFloats mixer = mixer_floats(layer);
    blocks += 3 * d + (has_mixer ? d + 1 + mixer.saved : 0) + (has_mlp ? d + 1 + mlp_saved : 0);
    mixer_backward = std::max(mixer_backward, mixer.backward);
    if (layer.mixer.type == "attention") {
      const int head_dim = layer.d_model / layer.mixer.heads;
      fixed += static_cast<double>(e.length) * head_dim + static_cast<double>(kernels::attention_tiled_workspace_size(
                                                              kernels::AttentionTiling{}, e.length, head_dim));
    }
  }
  const double per_token = blocks + 2 * d + 2.0 * vocab + 1;
  add("activations", kFloat * (rows * per_token + fixed),
      fmt::format("{} x {} tokens x {:.0f} floats", e.local_batch, e.length, per_token));
  const double mlp_tile =
      has_mlp ? (cfg.model.mlp.type == "swiglu" ? 2.0 : 1.0) * std::min(rows, 1.0 * kMlpRowTile) * I : 0;
  add("workspace", kFloat * (rows * (2 * d + mixer_backward) + mlp_tile),
      fmt::format("one block's backward, {:.0f} floats per token", 2 * d + mixer_backward));
  add("runtime", kRuntimeBytes, "binary, libraries, BLAS buffers");
  return e;
}

std::string describe(const MemoryEstimate& e) {
  std::string parts;
  for (const MemoryPart& p : e.parts)
    parts += fmt::format("{}{} {}", parts.empty() ? "" : " + ", p.name, util::format_bytes(p.bytes));
  return fmt::format("memory estimate {} per rank ({} rank(s), {} parameters, batch {} x length {} per rank) = {}",
                     util::format_bytes(e.total()), e.ranks, e.n_params, e.local_batch, e.length, parts);
}

std::optional<AvailableMemory> available_memory() {
  if (const char* test = std::getenv("EXPT_TEST_MEMORY_AVAILABLE"); test != nullptr && *test != '\0')
    return AvailableMemory{std::strtod(test, nullptr), "EXPT_TEST_MEMORY_AVAILABLE"};
  std::optional<AvailableMemory> best;
  const auto consider = [&best](std::optional<double> bytes, const char* source) {
    if (bytes && (!best || *bytes < best->bytes)) best = AvailableMemory{*bytes, source};
  };
  consider(mem_available(), "MemAvailable");
  // A cgroup's usage counts the page cache; its inactive part is reclaimed before the limit bites,
  // so it is available (as the kernel's working-set figure has it).
  const std::string v2 = cgroup_v2_dir();
  if (const auto limit = read_number(v2 + "/memory.max")) {
    const double used =
        read_number(v2 + "/memory.current").value_or(0) - stat_counter(v2 + "/memory.stat", "inactive_file");
    consider(std::max(0.0, *limit - std::max(0.0, used)), "cgroup memory.max");
  } else if (const auto v1 = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes"); v1 && *v1 < 1e18) {
    const double used = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes").value_or(0) -
                        stat_counter("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file");
    consider(std::max(0.0, *v1 - std::max(0.0, used)), "cgroup memory.limit_in_bytes");
  }
  return best;
}

std::optional<std::string> memory_refusal(const MemoryEstimate& e, int ranks_here, const AvailableMemory& available) {
  const double need = e.total() * ranks_here;
  if (need <= available.bytes) return std::nullopt;
  // The largest parts first: what to change.
  std::vector<MemoryPart> parts = e.parts;
  std::stable_sort(parts.begin(), parts.end(),
                   [](const MemoryPart& a, const MemoryPart& b) { return a.bytes > b.bytes; });
  std::string text = fmt::format(
      "refusing to start: this trial needs about {} ({} rank(s) on this host x {} per rank) but {} is available ({})\n",
      util::format_bytes(need), ranks_here, util::format_bytes(e.total()), util::format_bytes(available.bytes),
      available.source);
  for (const MemoryPart& p : parts)
    text += fmt::format("  {:<12} {:>10}  {}\n", p.name, util::format_bytes(p.bytes), p.detail);
  const double model =
      e.part("parameters") + e.part("gradients") + e.part("update copy") + e.part("optimizer") + e.part("reduction");
  const double activations = e.part("activations") + e.part("workspace");
  text += fmt::format(
      "  to fit, cut it by {:.2f}x: the parameters, gradients, update copy and optimizer state ({}) grow with "
      "model.d_model^2 x model.n_layers and with the optimizer's state (adamw: 2 floats per parameter; muon: 1 per "
      "hidden-matrix parameter); the activations and workspace ({}) with train.batch_size x sequence length per "
      "rank. `--no-memory-check` (expt run, sweep or worker) starts it anyway",
      need / available.bytes, util::format_bytes(model * ranks_here), util::format_bytes(activations * ranks_here));
  return text;
}

int trial_ranks_on_this_host(int trial_ranks) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* value = std::getenv(name); value != nullptr && std::atoi(value) > 0)
      return std::min(trial_ranks, std::atoi(value));
  return 1;
}

void check_trial_memory(const MemoryEstimate& estimate, comm::Communicator& comm, bool enabled) {
  std::optional<std::string> refusal;
  // Every rank takes part in the allreduce, also with the check off (a rank without the setting
  // cannot wait alone).
  if (enabled && !memory_check_disabled())
    if (const auto available = available_memory())
      refusal = memory_refusal(estimate, trial_ranks_on_this_host(comm.size()), *available);
  // The lowest rank that refuses says why; every rank stops.
  std::vector<std::int64_t> refusing(static_cast<std::size_t>(comm.size()), 0);
  refusing[static_cast<std::size_t>(comm.rank())] = refusal ? 1 : 0;
  comm.allreduce_sum(std::span<std::int64_t>(refusing));
  const auto first = std::find(refusing.begin(), refusing.end(), 1);
  if (first == refusing.end()) return;
  const int who = static_cast<int>(first - refusing.begin());
  if (who == comm.rank()) throw MemoryRefusal(*refusal);
  throw MemoryRefusal(fmt::format("refusing to start: rank {} of this trial has not enough memory for it", who));
}

double peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) * 1024.0;
}

bool memory_check_disabled() {
  const char* value = std::getenv("EXPT_NO_MEMORY_CHECK");
  return value != nullptr && std::string(value) == "1";
}

}  // namespace expt::experiments
