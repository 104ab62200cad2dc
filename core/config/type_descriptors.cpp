#include "core/config/type_descriptors.hpp"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "core/config/schema.hpp"
#include "core/config/text.hpp"

namespace expt::config {

namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

// ---- optimizers (docs/derivations/: the reference defaults of each method) ----

void muon_defaults(OptimizerConfig& c) {
  c.lr = 0.02;
  c.beta1 = 0.9;  // of the AdamW part
  c.beta2 = 0.95;
  c.eps = 1e-10;
  c.adam_lr_ratio = 0.2;
}

void soap_defaults(OptimizerConfig& c) {
  c.lr = 3e-3;
  c.beta1 = 0.95;
  c.beta2 = 0.95;
}

void mfac_defaults(OptimizerConfig& c) { c.momentum = 0.0; }

void no_defaults(OptimizerConfig&) {}

// ---- mixers (FLA's layer defaults, docs/layers.md) ----

void gla_defaults(MixerConfig& c) {
  c.expand_k = 0.5;
  c.use_short_conv = false;
  c.use_output_gate = true;
}

void deltaproduct_defaults(MixerConfig& c) {
  c.allow_neg_eigval = true;
  c.use_output_gate = true;
}

void gated_deltaproduct_defaults(MixerConfig& c) {
  deltaproduct_defaults(c);
  c.use_forget_gate = true;
}

// Zoology's BaseConv: a depthwise causal convolution of width 3 (its MQAR configs' kernel_size).
void base_conv_defaults(MixerConfig& c) { c.conv_size = 3; }

void no_mixer_defaults(MixerConfig&) {}

std::optional<SizingConflict> no_heads(const ModelConfig& m) {
  if (m.mixer.heads >= 1) return std::nullopt;
  return SizingConflict{{"model.mixer.heads"}, cat("model.mixer.heads must be >= 1, got ", str(m.mixer.heads))};
}

// Attention: d_model / heads, even for RoPE.
MixerSizing attention_sizing(const ModelConfig& m) {
  if (auto problem = no_heads(m)) return *problem;
  const int d = m.d_model, h = m.mixer.heads;
  if (d % h != 0)
    return SizingConflict{{"model.mixer.heads", "model.d_model"},
                          cat("model.d_model ", str(d), " is not divisible by model.mixer.heads ", str(h))};
  if ((d / h) % 2 != 0)
    return SizingConflict{{"model.mixer.heads", "model.d_model"},
                          cat("head dimension model.d_model / model.mixer.heads = ", str(d / h),
                              " must be even (RoPE rotates pairs of features)")};
  return HeadDims{h, d / h, d / h};
}

// Widths derived from a float ratio are checked against this bound before the cast to an integer
// (casting an out-of-range double is undefined behaviour; the fuzzer reaches it).
constexpr double kMaxDim = 1 << 30;

// gla, deltanet: the total key and value dims int(d_model * expand) split evenly over the heads.
MixerSizing expand_sizing(const ModelConfig& m) {
  if (auto problem = no_heads(m)) return *problem;
  const int h = m.mixer.heads;
  HeadDims dims{h, 0, 0};
  for (const auto& [name, ratio, per_head] : {std::tuple{"expand_k", m.mixer.expand_k, &dims.key_dim},
                                              std::tuple{"expand_v", m.mixer.expand_v, &dims.value_dim}}) {
    if (!(m.d_model * ratio < kMaxDim))
      return SizingConflict{
          {cat("model.mixer.", name), "model.d_model"},
          cat("int(model.d_model * model.mixer.", name, ") = ", schema::show(m.d_model * ratio), " exceeds 2^30")};
    const auto total = static_cast<std::int64_t>(m.d_model * ratio);
    if (total < h || total % h != 0)
      return SizingConflict{{cat("model.mixer.", name), "model.mixer.heads", "model.d_model"},
                            cat("int(model.d_model * model.mixer.", name, ") = ", str(total),
                                " is not a positive multiple of model.mixer.heads ", str(h))};
    *per_head = static_cast<int>(total / h);
  }
  return dims;
}

// deltaproduct types: head_dim (0: d_model / heads, which must then be whole), value width
// int(head_dim * expand_v).
MixerSizing product_sizing(const ModelConfig& m) {
  if (auto problem = no_heads(m)) return *problem;
  const int h = m.mixer.heads;
  if (m.mixer.head_dim == 0 && m.d_model % h != 0)
    return SizingConflict{{"model.mixer.heads", "model.d_model"},
                          cat("model.d_model ", str(m.d_model), " is not divisible by model.mixer.heads ", str(h),
                              " (model.mixer.head_dim is 0)")};
  const int key_dim = m.mixer.head_dim > 0 ? m.mixer.head_dim : m.d_model / h;
  if (!(key_dim * m.mixer.expand_v < kMaxDim))
    return SizingConflict{{"model.mixer.expand_v", "model.mixer.head_dim"},
                          cat("value dimension int(head_dim * model.mixer.expand_v) = ",
                              schema::show(key_dim * m.mixer.expand_v), " exceeds 2^30")};
  const auto value_dim = static_cast<std::int64_t>(key_dim * m.mixer.expand_v);
  if (value_dim < 1)
    return SizingConflict{{"model.mixer.expand_v", "model.mixer.head_dim"},
                          "value dimension int(head_dim * model.mixer.expand_v) is 0"};
  return HeadDims{h, key_dim, static_cast<int>(value_dim)};
}

std::vector<std::string> expand_sizing_keys() {
  return {"model.mixer.type", "model.d_model", "model.mixer.heads", "model.mixer.expand_k", "model.mixer.expand_v"};
}
std::vector<std::string> product_sizing_keys() {
  return {"model.mixer.type", "model.d_model", "model.mixer.heads", "model.mixer.head_dim", "model.mixer.expand_v"};
}

}  // namespace

const std::vector<OptimizerType>& optimizer_types() {
  static const std::vector<OptimizerType> types = {
      {OptimizerKind::adamw, "adamw", {"beta1", "beta2", "eps", "eps_mode"}, &no_defaults},
      {OptimizerKind::muon,
       "muon",
       {"beta1", "beta2", "eps", "adam_patterns", "adam_lr_ratio", "adam_weight_decay", "momentum", "nesterov", "shard",
        "ns_steps", "ns_eps", "ns_coefficients", "ns_method", "scale"},
       &muon_defaults},
      {OptimizerKind::soap,
       "soap",
       {"beta1", "beta2", "eps", "shard", "shampoo_beta", "precondition_frequency", "max_precond_dim", "merge_dims",
        "one_sided", "block_size"},
       &soap_defaults},
      {OptimizerKind::mfac,
       "mfac",
       {"momentum", "shard", "block_size", "window", "damping", "wd_mode"},
       &mfac_defaults},
      {OptimizerKind::dct_adamw,
       "dct_adamw",
       {"beta1", "beta2", "eps", "adam_patterns", "adam_lr_ratio", "adam_weight_decay", "shard", "rank",
        "refresh_every", "on_refresh"},
       &no_defaults},
  };
  return types;
}

const std::vector<std::string>& common_optimizer_keys() {
  static const std::vector<std::string> keys = {"type", "lr", "weight_decay", "decay_embeddings"};
  return keys;
}

const OptimizerType* find_optimizer_type(std::string_view name) {
  for (const OptimizerType& t : optimizer_types())
    if (t.name == name) return &t;
  return nullptr;
}

OptimizerConfig optimizer_defaults(const std::string& type) {
  const OptimizerType* t = find_optimizer_type(type);
  if (t == nullptr) throw std::invalid_argument(cat("unknown optimizer type '", type, "'"));
  OptimizerConfig cfg;
  cfg.type = type;
  t->defaults(cfg);
  return cfg;
}

const std::vector<MixerType>& mixer_types() {
  static const std::vector<MixerType> types = {
      {MixerKind::attention,
       "attention",
       {"heads", "rope_base"},
       &no_mixer_defaults,
       &attention_sizing,
       {"model.mixer.type", "model.d_model", "model.mixer.heads"}},
      {MixerKind::gla,
       "gla",
       {"heads", "expand_k", "expand_v", "use_short_conv", "conv_size", "use_output_gate", "gate_low_rank_dim",
        "gate_logit_normalizer", "chunk_size"},
       &gla_defaults,
       &expand_sizing,
       expand_sizing_keys()},
      {MixerKind::deltanet,
       "deltanet",
       {"heads", "expand_k", "expand_v", "allow_neg_eigval", "use_forget_gate", "use_short_conv", "conv_size",
        "use_output_gate", "chunk_size"},
       &no_mixer_defaults,
       &expand_sizing,
       expand_sizing_keys()},
      {MixerKind::deltaproduct,
       "deltaproduct",
       {"heads", "head_dim", "expand_v", "num_householder", "allow_neg_eigval", "use_forget_gate", "use_short_conv",
        "conv_size", "use_output_gate", "chunk_size"},
       &deltaproduct_defaults,
       &product_sizing,
       product_sizing_keys()},
      {MixerKind::gated_deltaproduct,
       "gated_deltaproduct",
       {"heads", "head_dim", "expand_v", "num_householder", "allow_neg_eigval", "use_short_conv", "conv_size",
        "use_output_gate", "chunk_size"},
       &gated_deltaproduct_defaults,
       &product_sizing,
       product_sizing_keys()},
      {MixerKind::base_conv, "base_conv", {"conv_size"}, &base_conv_defaults, nullptr, {}},
      {MixerKind::none, "none", {}, &no_mixer_defaults, nullptr, {}},
  };
  return types;
}

const MixerType* find_mixer_type(std::string_view name) {
  for (const MixerType& t : mixer_types())
    if (t.name == name) return &t;
  return nullptr;
}

MixerConfig mixer_defaults(const std::string& type) {
  const MixerType* t = find_mixer_type(type);
  if (t == nullptr) throw std::invalid_argument(cat("unknown mixer type '", type, "'"));
  MixerConfig cfg;
  cfg.type = type;
  t->defaults(cfg);
  return cfg;
}

const MixerConfig& ModelConfig::layer_mixer(int layer) const {
  for (int l : hybrid_layers)
    if (l == layer) return hybrid_mixer;
  return mixer;
}

ModelConfig ModelConfig::for_layer(int layer) const {
  ModelConfig c = *this;
  c.mixer = layer_mixer(layer);
  c.hybrid_layers.clear();
  return c;
}

}  // namespace expt::config
