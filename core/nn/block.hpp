// Pre-norm residual block (FLA, docs/layers.md):
//   h = x + Mixer(RMSNorm_attn(x))     (h = x when mixer.type is `none`)
//   y = h + MLP(RMSNorm_mlp(h))        (y = h when mlp.type is `none`)
// Parameters under prefix ("blocks.3."): attn_norm.weight, mixer.* (see the mixer's header),
// mlp_norm.weight, mlp.{gate,up,down}_proj.weight, registered in that order.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/mixer.hpp"
#include "core/nn/mlp.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/rmsnorm.hpp"
#include "core/nn/workspace.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class Block {
 public:
  // Throws std::invalid_argument for an unknown mixer or MLP type (make_mixer; swiglu, silu or none).
  Block(ParameterStore<T>& store, const std::string& prefix, const config::ModelConfig& cfg);

  // x [batch*seq_len, d] -> y [batch*seq_len, d] (y must not alias x); caches what backward needs.
  void forward(const T* x, T* y, int batch, int seq_len);
  // From dy: parameter gradients accumulated, dx overwritten (dx must not alias dy). Same x and
  // shape as the last forward. Gradient scratch from ws (dL/dh, a branch's input gradient and the
  // mixer's and MLP's own), released before returning.
  void backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws);

  // Empty / nullptr when mixer.type is `none`.
  const std::optional<RMSNorm<T>>& attn_norm() const { return attn_norm_; }
  const Mixer<T>* mixer() const { return mixer_.get(); }
  Mixer<T>* mixer() { return mixer_.get(); }
  // Empty when mlp.type is `none`.
  const std::optional<RMSNorm<T>>& mlp_norm() const { return mlp_norm_; }
  const std::optional<Mlp<T>>& mlp() const { return mlp_; }

 private:
  int d_model_;
  std::optional<RMSNorm<T>> attn_norm_;
  std::unique_ptr<Mixer<T>> mixer_;
  std::optional<RMSNorm<T>> mlp_norm_;
  std::optional<Mlp<T>> mlp_;
  util::AlignedVector<T> attn_in_;  // [rows, d] RMSNorm_attn(x)
  util::AlignedVector<T> h_;        // [rows, d] x + Mixer(...)
  util::AlignedVector<T> mlp_in_;   // [rows, d] RMSNorm_mlp(h)
  util::AlignedVector<T> branch_;   // [rows, d] output of the mixer / MLP before the residual add
};

extern template class Block<float>;
extern template class Block<double>;

}  // namespace expt::nn
