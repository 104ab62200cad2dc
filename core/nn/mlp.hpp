// The channel mixer of a block (mlp.type), no biases, every projection role `matrix`:
//   swiglu (FLA GatedMLP):  MLP(x) = down( silu(gate x) * up x )   gate_proj, up_proj: d -> I
//   silu (plain MLP):       MLP(x) = down( silu(up x) )            up_proj: d -> I
// down_proj: I -> d; silu(z) = z * sigmoid(z). The plain SiLU MLP is the one of the state-tracking
// calibration in docs/results.md (a "SwiGLU-free 4x SiLU MLP").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/linear.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/workspace.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

// Intermediate width I: cfg.intermediate_size when > 0, otherwise
//   swiglu: FLA's rule  I = 256 * ceil(int(d_model * hidden_ratio * 2 / 3) / 256)   (docs/layers.md)
//   silu:   I = int(d_model * hidden_ratio)                                      (not rounded)
int mlp_intermediate_size(const config::MlpConfig& cfg, int d_model);

template <class T>
class Mlp {
 public:
  // Registers prefix + "gate_proj.weight" (gated only), "up_proj.weight", "down_proj.weight".
  Mlp(ParameterStore<T>& store, const std::string& prefix, int d_model, int intermediate_size, bool gated);

  // x [rows, d] -> y [rows, d]; caches the projections and the hidden activation.
  void forward(const T* x, T* y, int rows);
  // From dy [rows, d]: parameter gradients accumulated, dx [rows, d] overwritten. x as in forward;
  // scratch from `ws`.
  void backward(const T* x, const T* dy, T* dx, int rows, Workspace<T>& ws);

  bool gated() const { return gate_.has_value(); }
  const Linear<T>* gate_proj() const { return gate_ ? &*gate_ : nullptr; }
  const Linear<T>& up_proj() const { return up_; }
  const Linear<T>& down_proj() const { return down_; }
  int intermediate_size() const { return width_; }

 private:
  std::optional<Linear<T>> gate_;  // swiglu only
  Linear<T> up_;
  Linear<T> down_;
  int width_;
  util::AlignedVector<T> gate_out_;  // [rows, I]  a = gate x (swiglu only)
  util::AlignedVector<T> up_out_;    // [rows, I]  u = up x
  util::AlignedVector<T> hidden_;    // [rows, I]  swiglu: silu(a) * u;  silu: silu(u)
};

extern template class Mlp<float>;
extern template class Mlp<double>;

}  // namespace expt::nn
