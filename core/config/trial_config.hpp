// Typed configuration of one trial. YAML is parsed once into these structs (core/config/loader);
// nothing downstream touches YAML. Defaults here are the documented defaults (docs/config.md);
// the loader's schema table is the single place that names each key, its type and its domain.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/config/enum_names.hpp"

namespace expt::config {

// task: what the model learns. Keys depend on task.type; docs/tasks.md describes every task.
struct TaskConfig {
  std::string type = "word_problem";  // word_problem | mqar | parity | mod_arith | text | tokens
  // word_problem: group word problem (docs/tasks.md).
  std::string group = "S3";  // S3 | S4 | A5 | S5 | Z<n> (n >= 2)
  // Every task: the training length (parity, mod_arith: the longest one) and the eval lengths.
  int seq_len = 32;               // training length
  std::vector<int> eval_lengths;  // eval lengths; empty means {seq_len}
  // mqar, tokens: vocabulary size (mqar: keys from [1, V/2), values from [V/2, V)).
  int vocab_size = 8192;
  // mqar: Zoology's multi-query associative recall (docs/tasks.md).
  int num_kv_pairs = 8;             // key-value pairs per sequence, each queried once
  double power_a = 0.01;            // query gaps drawn with probability ~ a * i^(a-1), i = gap + 1
  bool random_non_queries = false;  // fill the unused slots with random tokens instead of 0
  // parity, mod_arith (docs/tasks.md): training lengths uniform in [min_len, seq_len].
  int min_len = 2;
  int modulus = 5;  // mod_arith: digits 0..modulus-1, arithmetic mod modulus
  // text: byte-level language modelling on text files (split into train/validation by blocks).
  // Files or glob patterns; the default is the text of Debian's fortunes packages (docs/tasks.md).
  std::vector<std::string> paths = {"/usr/share/games/fortunes/*.u8"};
  double val_fraction = 0.1;      // fraction of the blocks that go to validation
  int split_block_bytes = 65536;  // size of the blocks the split assigns
  // tokens: language modelling on memory-mapped token files (paths may be glob patterns).
  std::string train_path;
  std::string val_path;
  std::string format = "nanogpt";  // nanogpt (raw uint16) | llmc (256-int32 header, then tokens)
};

// model.mixer: the sequence mixer of every block (docs/layers.md). The member defaults are those of
// deltanet where a key has per-type defaults; each type's descriptor (core/config/type_descriptors)
// holds its own, and mixer_defaults(type) applies them (the loader does when the YAML names the type).
struct MixerConfig {
  std::string type = "attention";       // a name of config::mixer_types()
  int heads = 4;                        // every type except none
  int head_dim = 0;                     // deltaproduct types: key dim per head; 0 means d_model / heads
  double expand_k = 1.0;                // gla, deltanet: total key dim int(d_model * expand_k)
  double expand_v = 1.0;                // gla, deltanet: total value dim int(d_model * expand_v);
                                        // deltaproduct types: value dim per head = head_dim * expand_v
  int num_householder = 2;              // deltaproduct types: Householder steps per token
  bool allow_neg_eigval = false;        // delta-rule types: beta in (0, 2) instead of (0, 1)
  bool use_forget_gate = false;         // deltanet, deltaproduct: scalar per-head decay (gated_deltaproduct: always)
  bool use_short_conv = true;           // gla, delta-rule types: causal depthwise conv + SiLU on q, k, v
  int conv_size = 4;                    // short conv kernel width (base_conv: its convolution's, default 3)
  bool use_output_gate = false;         // gla, delta-rule types: RMSNorm(o) * SiLU(x W_g)
  int gate_low_rank_dim = 16;           // gla: rank of the forget-gate projection
  double gate_logit_normalizer = 16.0;  // gla: log-gate = logsigmoid(z) / gate_logit_normalizer
  int chunk_size = 64;                  // chunk length of the chunked kernels (gla and delta-rule types)
  double rope_base = 10000.0;           // attention: RoPE theta
};

// The defaults of a mixer type (FLA's layer defaults, docs/layers.md): a config that names a mixer
// starts from these, then its explicit keys override them. Throws std::invalid_argument for a name
// that is not a mixer type.
MixerConfig mixer_defaults(const std::string& type);

struct MlpConfig {
  std::string type = "swiglu";  // swiglu | silu | none
  // 0 means FLA's rule: 256 * ceil(int(d_model * hidden_ratio * 2/3) / 256).
  int intermediate_size = 0;
  double hidden_ratio = 4.0;
};

struct ModelConfig {
  int d_model = 64;
  int n_layers = 2;
  int vocab_size = 0;  // 0: taken from the task
  MixerConfig mixer;
  // Per-layer mixers (docs/decisions.md 143): the blocks listed in hybrid_layers take hybrid_mixer
  // instead of mixer, e.g. Zoology's MQAR hybrid {hybrid_mixer: {type: base_conv}, hybrid_layers: [0]}.
  MixerConfig hybrid_mixer{.type = "none"};
  std::vector<int> hybrid_layers;  // block indices in [0, n_layers), each at most once
  MlpConfig mlp;
  bool tie_embeddings = false;
  double norm_eps = 1e-6;
  double init_std = 0.02;       // normal(0, init_std) for every Linear and Embedding weight
  std::string init = "normal";  // normal | rescale (o_proj and down_proj scaled by 1/sqrt(2*n_layers))

  // The mixer of block `layer`: hybrid_mixer when hybrid_layers lists it, else mixer.
  const MixerConfig& layer_mixer(int layer) const;
  // This config with `mixer` replaced by block `layer`'s mixer (what the block and the layer
  // factory read) and no hybrid layers.
  ModelConfig for_layer(int layer) const;
};

// The enumerated options of the optimizers, spelled by the tables below (enum_names.hpp).
enum class EpsMode { torch, hf };  // AdamW: eps after (torch) or before (hf) the bias correction
enum class NsCoefficients { keller_jordan, classic_quintic };
enum class NsMethod { gram, standard };        // gram: Gram Newton-Schulz where max(m, n) >= 2 min(m, n)
enum class MuonScale { original, moonlight };  // sqrt(max(1, m/n)) | 0.2 sqrt(max(m, n))
enum class WdMode { coupled_l2, decoupled_lr_scaled };
enum class OnRefresh { keep, remap };

inline constexpr EnumName<EpsMode> kEpsModeNames[] = {{EpsMode::torch, "torch"}, {EpsMode::hf, "hf"}};
inline constexpr EnumName<NsCoefficients> kNsCoefficientNames[] = {
    {NsCoefficients::keller_jordan, "keller_jordan"}, {NsCoefficients::classic_quintic, "classic_quintic"}};
inline constexpr EnumName<NsMethod> kNsMethodNames[] = {{NsMethod::gram, "gram"}, {NsMethod::standard, "standard"}};
inline constexpr EnumName<MuonScale> kMuonScaleNames[] = {{MuonScale::original, "original"},
                                                          {MuonScale::moonlight, "moonlight"}};
inline constexpr EnumName<WdMode> kWdModeNames[] = {{WdMode::coupled_l2, "coupled_l2"},
                                                    {WdMode::decoupled_lr_scaled, "decoupled_lr_scaled"}};
inline constexpr EnumName<OnRefresh> kOnRefreshNames[] = {{OnRefresh::keep, "keep"}, {OnRefresh::remap, "remap"}};
constexpr std::span<const EnumName<EpsMode>> enum_names(EpsMode) { return kEpsModeNames; }
constexpr std::span<const EnumName<NsCoefficients>> enum_names(NsCoefficients) { return kNsCoefficientNames; }
constexpr std::span<const EnumName<NsMethod>> enum_names(NsMethod) { return kNsMethodNames; }
constexpr std::span<const EnumName<MuonScale>> enum_names(MuonScale) { return kMuonScaleNames; }
constexpr std::span<const EnumName<WdMode>> enum_names(WdMode) { return kWdModeNames; }
constexpr std::span<const EnumName<OnRefresh>> enum_names(OnRefresh) { return kOnRefreshNames; }

// optimizer: the member defaults are AdamW's; each type's descriptor (core/config/type_descriptors)
// holds its own, and optimizer_defaults(type) applies them (the loader does when the YAML names the
// type). docs/optimizers.md describes every option.
struct OptimizerConfig {
  std::string type = "adamw";  // a name of config::optimizer_types()
  double lr = 1e-3;
  double weight_decay = 0.0;  // decoupled decay of the main group (Muon/DCT: the routed matrices)
  // AdamW; also Muon's and DCT-AdamW's AdamW part and SOAP's Adam in the eigenbasis.
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  EpsMode eps_mode = EpsMode::torch;  // docs/derivations/adamw.md
  bool decay_embeddings = false;      // apply weight decay to embedding (and tied head) weights
  // Routing of the hybrids (muon, dct_adamw): matrices go to the main optimizer except those whose
  // name matches one of these globs (written as one comma-separated string in YAML); everything
  // else goes to an AdamW part with lr * adam_lr_ratio and weight decay adam_weight_decay (head,
  // and embedding if decay_embeddings).
  std::vector<std::string> adam_patterns;
  double adam_lr_ratio = 1.0;
  double adam_weight_decay = 0.0;
  // Muon (momentum also M-FAC's)
  double momentum = 0.95;
  bool nesterov = true;
  int ns_steps = 5;
  double ns_eps = 1e-7;
  NsCoefficients ns_coefficients = NsCoefficients::keller_jordan;
  NsMethod ns_method = NsMethod::gram;
  MuonScale scale = MuonScale::original;
  bool shard = true;  // data-parallel trials: one owner rank per matrix runs NS, then broadcasts
  // SOAP (block_size also M-FAC's)
  double shampoo_beta = -1.0;  // < 0: use beta2
  int precondition_frequency = 10;
  int max_precond_dim = 10000;
  bool merge_dims = false;
  bool one_sided = false;
  int block_size = 0;  // 0: no blocking
  // M-FAC
  int window = 64;
  double damping = 1e-5;
  WdMode wd_mode = WdMode::coupled_l2;
  // DCT-AdamW
  int rank = 32;
  int refresh_every = 200;
  OnRefresh on_refresh = OnRefresh::keep;
};

// The defaults of `type` (its descriptor, core/config/type_descriptors.cpp; docs/config.md lists
// them): a config that names an optimizer starts from these, then its explicit keys override them.
// Throws std::invalid_argument for a name that is not an optimizer type.
OptimizerConfig optimizer_defaults(const std::string& type);

struct ScheduleConfig {
  std::string type = "constant";  // constant | cosine | wsd | linear
  double warmup = 0.0;            // >= 1: steps; in [0, 1): fraction of train.steps
  double min_lr_ratio = 0.0;      // eta_min = min_lr_ratio * lr (cosine, wsd, linear)
  double decay = 0.2;             // wsd: fraction of total steps in the final linear decay
};

struct TrainConfig {
  std::int64_t steps = 1000;
  int batch_size = 32;                 // global batch, in sequences
  int ranks = 1;                       // data-parallel ranks per trial (batch_size % ranks == 0)
  bool deterministic = false;          // fixed micro-shards summed in a fixed order: bit-identical at any ranks
  std::int64_t eval_every = 100;       // eval on the grid k*eval_every plus the last step
  int eval_batches = 4;                // batches per eval length
  std::int64_t checkpoint_every = 0;   // 0: no periodic checkpoint
  double grad_clip = 0.0;              // global-norm clip; 0 disables
  std::int64_t log_every = 10;         // train-metric rows are written every step; this is the console cadence
  std::string record_grad_trace;       // gradient trace file (docs/trace-format.md); empty: none
  std::int64_t diagnostics_every = 0;  // per-matrix optimizer diagnostics cadence; 0: off
  std::string precision = "fp32";      // fp32 | bf16: operands of the model's large products (Linear)
};

// train.deterministic cuts the global batch into this many equal micro-shards: the largest power of
// two that divides batch_size, at most 8. Their gradients are summed as a perfect binary tree in
// shard order, so train.ranks must be a power of two dividing it (docs/distributed.md).
inline int deterministic_micro_shards(int batch_size) {
  int shards = 1;
  while (shards < 8 && batch_size % (2 * shards) == 0) shards *= 2;
  return shards;
}

struct TrialConfig {
  std::uint64_t seed = 0;
  TaskConfig task;
  ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  std::string out = "runs/trial";  // output directory of the trial
};

}  // namespace expt::config
