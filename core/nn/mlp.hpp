// SwiGLU MLP (FLA GatedMLP), no biases:
//   MLP(x) = down( silu(gate x) * up x ),   silu(z) = z * sigmoid(z)
// gate_proj, up_proj: d -> I, down_proj: I -> d, all role `matrix`.
#pragma once

#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/linear.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/workspace.hpp"

namespace expt::nn {

// Intermediate width: cfg.intermediate_size when > 0, otherwise FLA's rule
//   I = 256 * ceil(int(d_model * hidden_ratio * 2 / 3) / 256)   (layers.md 3.2).
int swiglu_intermediate_size(const config::MlpConfig& cfg, int d_model);

template <class T>
class SwiGLU {
 public:
  // Registers prefix + "gate_proj.weight", "up_proj.weight", "down_proj.weight".
  SwiGLU(ParameterStore<T>& store, const std::string& prefix, int d_model, int intermediate_size);

  // x [rows, d] -> y [rows, d]; caches gate, up and the hidden product.
  void forward(const T* x, T* y, int rows);
  // From dy [rows, d]: parameter gradients accumulated, dx [rows, d] overwritten. x as in forward.
  // Scratch (dL/dh then dL/da in place, dL/du: 2 x [rows, I]) from ws, released before returning.
  void backward(const T* x, const T* dy, T* dx, int rows, Workspace<T>& ws);

  const Linear<T>& gate_proj() const { return gate_; }
  const Linear<T>& up_proj() const { return up_; }
  const Linear<T>& down_proj() const { return down_; }
  int intermediate_size() const { return width_; }

 private:
  Linear<T> gate_;
  Linear<T> up_;
  Linear<T> down_;
  int width_;
  std::vector<T> gate_out_;  // [rows, I]  a = gate x
  std::vector<T> up_out_;    // [rows, I]  u = up x
  std::vector<T> hidden_;    // [rows, I]  silu(a) * u
};

extern template class SwiGLU<float>;
extern template class SwiGLU<double>;

}  // namespace expt::nn
