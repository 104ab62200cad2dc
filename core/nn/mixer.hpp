// The sequence mixer of a block (docs/layers.md): a module that maps the normalised
// residual stream x [batch*seq_len, d_model] to y [batch*seq_len, d_model], mixing information
// along time causally. Implementations register their parameters in the constructor under the
// prefix "blocks.<i>.mixer." and cache what backward needs during forward (llm.c style, no tape).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/workspace.hpp"

namespace expt::nn {

template <class T>
class Mixer {
 public:
  virtual ~Mixer() = default;

  // x [batch*seq_len, d] -> y [batch*seq_len, d] (y must not alias x); rows are (sequence, time)
  // row-major, sequences independent.
  virtual void forward(const T* x, T* y, int batch, int seq_len) = 0;
  // From dy: parameter gradients accumulated into the store, dx overwritten. Same x and shape as
  // the last forward. Gradient scratch comes from ws (released before returning).
  virtual void backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) = 0;

  // Store id of the output projection o_proj (scaled down by the `rescale` init); none for a
  // mixer without one (base_conv).
  virtual std::optional<std::size_t> output_weight_id() const = 0;
  // Model::init_parameters draws every `matrix` weight N(0, init_std) and sets every `vector` to 1;
  // a mixer then overwrites the parameters that start otherwise (conv weights, biases, A_log,
  // dt_bias) with values drawn from rng::Stream::init keyed by (seed, parameter id).
  virtual void init_parameters(std::uint64_t seed, double init_std) = 0;
  // Forward+backward FLOPs per token of the sequence-mixing core (everything except the
  // projections, which Model counts through the parameter count) at length seq_len.
  virtual double core_flops_per_token(int seq_len) const = 0;
};

// The mixer of cfg.mixer.type (a type of config::mixer_types()) for a model of width cfg.d_model
// (a block passes ModelConfig::for_layer, so a hybrid layer's mixer arrives as cfg.mixer),
// sized by the type's descriptor; nullptr for `none`. Throws std::invalid_argument on an unknown
// type or on sizes the descriptor cannot split into heads.
template <class T>
std::unique_ptr<Mixer<T>> make_mixer(ParameterStore<T>& store, const std::string& prefix,
                                     const config::ModelConfig& cfg);

}  // namespace expt::nn
