// The output head shared by the linear-attention mixers (GLA and the delta-rule family; docs/layers.md,
// docs/derivations/norms.md): from the kernel output o [rows, H d_v] and the layer input x [rows, d],
//   z   = x W_g                                    (output gate only; W_g [H d_v, d])
//   n_h = RMSNorm_{d_v}(o_h) (.) w   [(.) SiLU(z_h) with the output gate]     (HeadRMSNorm)
//   y   = concat_h(n_h) W_o                        (o_proj, W_o [d, H d_v])
// The gate projection belongs to the mixer (it registers it in its own parameter order, which
// differs between GLA and DeltaNet); this class registers the norm weight and o_proj, caches z and
// the o_proj input for backward, and runs the three pieces forward and backward.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/nn/head_rmsnorm.hpp"
#include "core/nn/linear.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/workspace.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class GatedOutput {
 public:
  // Registers norm_name [head_dim] (vector) and o_proj_name [d_model, heads*head_dim] (matrix).
  // gate_proj: the mixer's x W_g projection (d_model -> heads*head_dim), or nullptr for no gate;
  // it must outlive this object.
  GatedOutput(ParameterStore<T>& store, const std::string& norm_name, const std::string& o_proj_name, int d_model,
              int heads, int head_dim, double eps, Linear<T>* gate_proj);
  GatedOutput(const GatedOutput&) = delete;
  GatedOutput& operator=(const GatedOutput&) = delete;

  // x [rows, d_model], o [rows, H d_v] -> y [rows, d_model]. Caches z and the normed o.
  void forward(const T* x, const T* o, T* y, int rows);
  // From dy [rows, d_model]: dW_o, dw accumulated; d_o [rows, H d_v] overwritten; with the gate,
  // its gradient dz [rows, H d_v] written to `dgate` (the caller's scratch, read by backward_gate;
  // nullptr without a gate). o as in the last forward; dnormed scratch from ws.
  void backward(const T* o, const T* dy, T* d_o, T* dgate, int rows, Workspace<T>& ws);
  // The gate's contribution to dx [rows, d_model]: dW_g += dz^T x and dx (+)= dz W_g (added when
  // accumulate_dx). Without a gate nothing is written; returns whether dx was written.
  bool backward_gate(const T* x, const T* dgate, T* dx, int rows, bool accumulate_dx);

  bool has_gate() const { return gate_proj_ != nullptr; }
  std::size_t output_weight_id() const { return o_proj_.weight_id(); }

 private:
  Linear<T>* gate_proj_;
  HeadRMSNorm<T> norm_;
  Linear<T> o_proj_;
  util::AlignedVector<T> gate_;    // [rows, H d_v] z = x W_g of the last forward
  util::AlignedVector<T> normed_;  // [rows, H d_v] the o_proj input
};

extern template class GatedOutput<float>;
extern template class GatedOutput<double>;

}  // namespace expt::nn
