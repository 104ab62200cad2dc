#include "core/nn/mixer.hpp"

#include <stdexcept>
#include <variant>

#include "core/config/type_descriptors.hpp"
#include "core/nn/attention.hpp"
#include "core/nn/base_conv.hpp"
#include "core/nn/delta_net.hpp"
#include "core/nn/gla.hpp"

namespace expt::nn {

namespace {

// The options the recurrent layers (GlaOptions, DeltaNetOptions) share: widths from the head split,
// the short convolution, the output gate, the chunk length and the norm epsilon.
template <class Options>
Options recurrent_options(const config::ModelConfig& cfg, const config::HeadDims& dims) {
  Options o;
  o.d_model = cfg.d_model;
  o.heads = dims.heads;
  o.key_dim = dims.key_dim;
  o.value_dim = dims.value_dim;
  o.use_short_conv = cfg.mixer.use_short_conv;
  o.conv_size = cfg.mixer.conv_size;
  o.use_output_gate = cfg.mixer.use_output_gate;
  o.chunk_size = cfg.mixer.chunk_size;
  o.norm_eps = cfg.norm_eps;
  return o;
}

}  // namespace

template <class T>
std::unique_ptr<Mixer<T>> make_mixer(ParameterStore<T>& store, const std::string& prefix,
                                     const config::ModelConfig& cfg) {
  const config::MixerConfig& m = cfg.mixer;
  const config::MixerType* type = config::find_mixer_type(m.type);
  if (type == nullptr) {
    std::string known;
    for (const config::MixerType& t : config::mixer_types()) known += (known.empty() ? "" : ", ") + t.name;
    throw std::invalid_argument("model: unknown mixer type '" + m.type + "' (known: " + known + ")");
  }
  config::HeadDims dims;
  if (type->sizing != nullptr) {
    const config::MixerSizing sizing = type->sizing(cfg);
    if (const auto* problem = std::get_if<config::SizingConflict>(&sizing))
      throw std::invalid_argument("model: " + problem->message);
    dims = std::get<config::HeadDims>(sizing);
  }
  switch (type->kind) {
    case config::MixerKind::none:
      return nullptr;
    case config::MixerKind::attention:
      return std::make_unique<CausalSelfAttention<T>>(store, prefix, cfg.d_model, dims.heads, m.rope_base);
    case config::MixerKind::gla: {
      auto o = recurrent_options<GlaOptions>(cfg, dims);
      o.gate_low_rank_dim = m.gate_low_rank_dim;
      o.gate_logit_normalizer = m.gate_logit_normalizer;
      return std::make_unique<GatedLinearAttention<T>>(store, prefix, o);
    }
    case config::MixerKind::deltanet:
    case config::MixerKind::deltaproduct:
    case config::MixerKind::gated_deltaproduct: {
      // One layer class for the delta-rule family (decision 17): DeltaNet is one Householder step
      // on the plain kernel; the product types take num_householder steps on the product kernel.
      auto o = recurrent_options<DeltaNetOptions>(cfg, dims);
      const bool product = type->kind != config::MixerKind::deltanet;
      o.householder_steps = product ? m.num_householder : 1;
      o.product_kernel = product;
      o.use_forget_gate = m.use_forget_gate || type->kind == config::MixerKind::gated_deltaproduct;
      o.allow_neg_eigval = m.allow_neg_eigval;
      return std::make_unique<DeltaNet<T>>(store, prefix, o);
    }
    case config::MixerKind::base_conv:
      return std::make_unique<BaseConv<T>>(store, prefix, cfg.d_model, m.conv_size);
  }
  throw std::logic_error("make_mixer: unhandled mixer kind");
}

template std::unique_ptr<Mixer<float>> make_mixer<float>(ParameterStore<float>&, const std::string&,
                                                         const config::ModelConfig&);
template std::unique_ptr<Mixer<double>> make_mixer<double>(ParameterStore<double>&, const std::string&,
                                                           const config::ModelConfig&);

}  // namespace expt::nn
