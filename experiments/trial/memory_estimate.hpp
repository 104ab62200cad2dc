// The pre-flight memory estimate of a trial, per rank (docs/reliability.md "Memory"), computed from
// the config alone: nothing is allocated (the model registers its parameters in a store that is
// never allocated, the optimizer's bytes come from its static memory(), optimizers/optimizer.hpp).
// `expt validate` and `expt plan` print it, the run log records it, and run_trial refuses a trial
// whose ranks on this host need more than the memory available to it (cgroup limit or MemAvailable).
//
// With N parameters (store order, every one 4 B), a rank's local batch b (batch_size / ranks; with
// train.deterministic the micro-shard batch_size / micro_shards), T = max(train length, eval
// lengths) and rows = b T, d = d_model, V = vocab, I = MLP intermediate size, n = n_layers:
//
//   parameters          4 N
//   gradients           4 N
//   update copy         4 N     the parameters before the update (the trainer's update norm and
//                               diagnostics; not in `expt bench`)
//   optimizer           optim::optimizer_memory(): state + scratch, unsharded (an upper bound when
//                               optimizer.shard splits it over the ranks)
//   reduction           train.deterministic: the micro-shard gradient tree, (log2(shards per
//                               rank) + 1) x 4 N, and with P > 1 ranks the gathered sums P x 4 N
//   activations         4 rows x floats_per_token, floats_per_token =
//                         sum over blocks (block + its mixer saved; a hybrid layer's mixer is
//                         model.hybrid_mixer) + 2 d (final block output, final norm)
//                         + 2 V (logits and their gradient) + 1 (the final norm's rstd)
//                       block = d (its input) + d (h) + d (branch output) + [mixer] d (norm out) + 1
//                         (rstd) + [mlp] d (norm out) + 1 (rstd) + 3 I (swiglu gate, up, hidden)
//                         or 2 I (silu)
//                       mixer saved, per token (H heads; D_k, D_v, r as the mixer sizes them):
//                         attention  4 d + H                 q, k, v, o, log-sum-exp
//                         gla        3 D_k + D_v + r + D_k + D_v + 2 D_v + H
//                                    q k v, z_low, z, g (D_k), o, gated output's norm and gate, rstd
//                                    [+ 2 D_k + D_v pre-convolution with short conv]
//                         delta rule 2 (Q + K + V) + Q + K + H + 3 n_h H + 2 O + H [+ O gate] [+ 2 H
//                                    forget gate], Q = H d_k, K = n_h H d_k, V = n_h H d_v,
//                                    O = H d_v: pre-activation, activated, normalised q k, rstds,
//                                    beta logits and beta, kernel output, norm, gate
//                         base_conv  2 d                     convolution and projection outputs
//                       plus per attention layer the RoPE tables (T x head_dim) and the tiled
//                         kernel's workspace (kernels::attention_tiled_workspace_size)
//   workspace           one block's backward scratch (the blocks share it, core/nn/workspace.hpp):
//                         rows x (2 d + max(mixer backward, 0)) + MLP tile 2 x 256 x I, where the
//                         mixer backward takes 4 d (attention), 2 D_v + 3 D_k + r + D_v [gate]
//                         + max(D_k, D_v) [conv] (gla), O + Q + K + V + n_h H + max(Q, K, V) + O
//                         [gate] + H [forget gate] + O (gated output) (delta rule), 2 d (base_conv),
//                         the largest over the blocks
//   runtime             kRuntimeBytes: the binary, its libraries and the BLAS buffers (measured
//                       as `expt bench`'s baseline RSS, docs/reliability.md)
//
// The chunked kernels' per-thread scratch (one head at a time: chunk states and factors), the
// forward products' copies of W^T where the CPU reads them (decision 169: at most 4 x 4 MiB) and
// the allocator's slack are not counted; the measured peak RSS over this estimate is in
// docs/reliability.md per mixer and optimizer, and tests/scripts/memory_estimate.sh holds it
// within kMeasuredOverEstimate.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/comm/communicator.hpp"
#include "core/config/trial_config.hpp"

namespace expt::experiments {

// The process's own memory before the model exists (binary, libraries, BLAS buffers), bytes.
inline constexpr double kRuntimeBytes = 40.0 * 1024 * 1024;
// tests/scripts/memory_estimate.sh: measured peak RSS / estimate must lie in [1 / f, f].
inline constexpr double kMeasuredOverEstimate = 1.5;

struct MemoryPart {
  std::string name;    // "parameters", "optimizer", ...
  double bytes = 0;    // per rank
  std::string detail;  // "1610612736 x 4 B", "adamw: state 12.0 GiB + scratch 0 B"
};

struct MemoryEstimate {
  std::vector<MemoryPart> parts;  // in the order above; parts that are 0 are left out
  std::int64_t n_params = 0;
  int ranks = 1;         // of the trial
  int local_batch = 0;   // sequences per forward on a rank
  int length = 0;        // the longest sequence (train or eval)
  double total() const;  // per rank
  // The bytes of one part (0 when absent).
  double part(const std::string& name) const;
};

struct MemoryEstimateOptions {
  bool update_copy = true;  // `expt bench` runs the training step without the trainer's copy
};

// Per rank of a trial run on cfg.train.ranks ranks. vocab: the task's (or model.vocab_size);
// without it the task is built to ask. Throws std::invalid_argument on a model the layers refuse.
MemoryEstimate estimate_trial_memory(const config::TrialConfig& cfg, std::optional<int> vocab = std::nullopt,
                                     const MemoryEstimateOptions& options = {});

// "1.2 GiB per rank = parameters 12.0 MiB + gradients ... (batch 32 x length 512 per rank)".
std::string describe(const MemoryEstimate& estimate);

// What this process may allocate: the smallest of /proc/meminfo's MemAvailable and the cgroup's
// limit minus its usage without the inactive page cache (v2: memory.max - (memory.current -
// inactive_file); v1: limit_in_bytes - (usage_in_bytes - total_inactive_file)).
// EXPT_TEST_MEMORY_AVAILABLE (bytes; test-only) replaces both so tests are deterministic. nullopt
// when neither can be read.
struct AvailableMemory {
  double bytes = 0;
  std::string source;  // "MemAvailable", "cgroup memory.max", "EXPT_TEST_MEMORY_AVAILABLE"
};
std::optional<AvailableMemory> available_memory();

// A trial refused before it allocated anything: the message has the numbers and what to change.
class MemoryRefusal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The refusal message when `ranks_here` ranks of this estimate need more than `available`, else
// nullopt.
std::optional<std::string> memory_refusal(const MemoryEstimate& estimate, int ranks_here,
                                          const AvailableMemory& available);

// The trial's ranks that share this host with this process: OpenMPI's / MPICH's / Slurm's local
// size capped at the trial's ranks, 1 without MPI.
int trial_ranks_on_this_host(int trial_ranks);

// Every rank of the trial: unless `enabled` is false or memory_check_disabled(), throws
// MemoryRefusal (with memory_refusal()'s message) on every rank when the estimate does not fit on
// some rank's host; the ranks agree through one allreduce (which every rank joins, check or not).
// Allocates nothing.
void check_trial_memory(const MemoryEstimate& estimate, comm::Communicator& comm, bool enabled);

// Peak resident set size of this process so far, in bytes (getrusage; Linux reports KiB).
double peak_rss_bytes();

// Whether the memory check is switched off: EXPT_NO_MEMORY_CHECK=1 (`expt sweep --no-memory-check`
// and `expt worker --no-memory-check` set it for their own process; `expt run`'s flag is
// TrainerOptions::memory_check).
bool memory_check_disabled();

}  // namespace expt::experiments
