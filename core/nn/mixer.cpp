#include "core/nn/mixer.hpp"

#include <stdexcept>

#include "core/nn/attention.hpp"
#include "core/nn/delta_net.hpp"
#include "core/nn/gla.hpp"

namespace expt::nn {

namespace {

// int(d_model * ratio) split into `heads` equal parts (fla's expand_k / expand_v sizing).
int per_head(const std::string& what, int d_model, double ratio, int heads) {
  const int total = static_cast<int>(d_model * ratio);
  if (heads <= 0 || total < heads || total % heads != 0)
    throw std::invalid_argument("mixer: " + what + " = int(d_model * ratio) = " + std::to_string(total) +
                                " is not a positive multiple of heads " + std::to_string(heads));
  return total / heads;
}

}  // namespace

template <class T>
std::unique_ptr<Mixer<T>> make_mixer(ParameterStore<T>& store, const std::string& prefix,
                                     const config::ModelConfig& cfg) {
  const config::MixerConfig& m = cfg.mixer;
  const int d = cfg.d_model;
  if (m.type == "none") return nullptr;
  if (m.type == "attention") return std::make_unique<CausalSelfAttention<T>>(store, prefix, d, m.heads, m.rope_base);
  if (m.type == "gla") {
    GlaOptions o;
    o.d_model = d;
    o.heads = m.heads;
    o.key_dim = per_head("total key dim", d, m.expand_k, m.heads);
    o.value_dim = per_head("total value dim", d, m.expand_v, m.heads);
    o.gate_low_rank_dim = m.gate_low_rank_dim;
    o.gate_logit_normalizer = m.gate_logit_normalizer;
    o.use_short_conv = m.use_short_conv;
    o.conv_size = m.conv_size;
    o.use_output_gate = m.use_output_gate;
    o.chunk_size = m.chunk_size;
    o.norm_eps = cfg.norm_eps;
    return std::make_unique<GatedLinearAttention<T>>(store, prefix, o);
  }
  if (m.type == "deltanet" || m.type == "deltaproduct" || m.type == "gated_deltaproduct") {
    DeltaNetOptions o;
    o.d_model = d;
    o.heads = m.heads;
    if (m.type == "deltanet") {
      o.key_dim = per_head("total key dim", d, m.expand_k, m.heads);
      o.value_dim = per_head("total value dim", d, m.expand_v, m.heads);
      o.householder_steps = 1;
      o.product_kernel = false;
      o.use_forget_gate = m.use_forget_gate;
    } else {
      o.key_dim = m.head_dim > 0 ? m.head_dim : per_head("head_dim (d_model / heads)", d, 1.0, m.heads);
      o.value_dim = static_cast<int>(o.key_dim * m.expand_v);
      o.householder_steps = m.num_householder;
      o.product_kernel = true;
      o.use_forget_gate = m.use_forget_gate || m.type == "gated_deltaproduct";
    }
    o.allow_neg_eigval = m.allow_neg_eigval;
    o.use_short_conv = m.use_short_conv;
    o.conv_size = m.conv_size;
    o.use_output_gate = m.use_output_gate;
    o.chunk_size = m.chunk_size;
    o.norm_eps = cfg.norm_eps;
    return std::make_unique<DeltaNet<T>>(store, prefix, o);
  }
  throw std::invalid_argument("model: unknown mixer type '" + m.type +
                              "' (expected attention, gla, deltanet, deltaproduct, gated_deltaproduct or none)");
}

template std::unique_ptr<Mixer<float>> make_mixer<float>(ParameterStore<float>&, const std::string&,
                                                         const config::ModelConfig&);
template std::unique_ptr<Mixer<double>> make_mixer<double>(ParameterStore<double>&, const std::string&,
                                                           const config::ModelConfig&);

}  // namespace expt::nn
