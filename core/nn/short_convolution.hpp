// The short convolution of a projection in the GLA and delta-rule layers (fla's ShortConvolution
// with activation "silu"): act = SiLU(causal depthwise conv(pre)), per channel c and token t
//   act[t, c] = silu( sum_{j < W} weight[c, j] pre[t - (W - 1) + j, c] )   (zero before the start)
// (kernels/short_conv.hpp). Parameter `name` [channels, W], role vector, initialised N(0, init_std).
// One module per projection; a layer holds one for each of q, k and v when use_short_conv is on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/nn/parameter_store.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class ShortConvolution {
 public:
  // Registers `name` with shape {channels, width} in the store.
  ShortConvolution(ParameterStore<T>& store, const std::string& name, int channels, int width);

  void init_parameters(std::uint64_t seed, double init_std);
  // pre, act [batch, seq_len, channels].
  void forward(const T* pre, T* act, int batch, int seq_len) const;
  // dpre (overwritten) from dact; the weight gradient is accumulated into the store.
  void backward(const T* pre, const T* dact, T* dpre, int batch, int seq_len);

  std::size_t weight_id() const { return weight_id_; }

 private:
  ParameterStore<T>* store_;
  std::size_t weight_id_;
  int channels_;
  int width_;
  util::AlignedVector<T> dweight_;  // [channels, width] the kernel's weight gradient of one call
};

// The module when `enabled` (the layer's use_short_conv), else none; registers nothing when off.
template <class T>
std::optional<ShortConvolution<T>> make_short_convolution(bool enabled, ParameterStore<T>& store,
                                                          const std::string& name, int channels, int width) {
  if (!enabled) return std::nullopt;
  return std::optional<ShortConvolution<T>>(std::in_place, store, name, channels, width);
}

extern template class ShortConvolution<float>;
extern template class ShortConvolution<double>;

}  // namespace expt::nn
