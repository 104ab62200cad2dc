#include "core/nn/mlp.hpp"

#include <cmath>
#include <cstddef>

namespace expt::nn {

int swiglu_intermediate_size(const config::MlpConfig& cfg, int d_model) {
  if (cfg.intermediate_size > 0) return cfg.intermediate_size;
  // Same operation order as FLA: int(hidden_size * hidden_ratio * 2 / 3), then round up to 256.
  const int raw = static_cast<int>(d_model * cfg.hidden_ratio * 2 / 3);
  return 256 * ((raw + 256 - 1) / 256);
}

template <class T>
SwiGLU<T>::SwiGLU(ParameterStore<T>& store, const std::string& prefix, int d_model, int intermediate_size)
    : gate_(store, prefix + "gate_proj.weight", d_model, intermediate_size, ParamRole::matrix),
      up_(store, prefix + "up_proj.weight", d_model, intermediate_size, ParamRole::matrix),
      down_(store, prefix + "down_proj.weight", intermediate_size, d_model, ParamRole::matrix),
      width_(intermediate_size) {}

template <class T>
void SwiGLU<T>::forward(const T* x, T* y, int rows) {
  const std::size_t n = static_cast<std::size_t>(rows) * width_;
  gate_out_.resize(n);
  up_out_.resize(n);
  hidden_.resize(n);
  gate_.forward(x, gate_out_.data(), rows);
  up_.forward(x, up_out_.data(), rows);
  // hidden = silu(a) * u = a * sigmoid(a) * u
  for (std::size_t i = 0; i < n; ++i) {
    const T a = gate_out_[i];
    const T sig = T(1) / (T(1) + std::exp(-a));
    hidden_[i] = a * sig * up_out_[i];
  }
  down_.forward(hidden_.data(), y, rows);
}

template <class T>
void SwiGLU<T>::backward(const T* x, const T* dy, T* dx, int rows, Workspace<T>& ws) {
  const std::size_t n = static_cast<std::size_t>(rows) * width_;
  const typename Workspace<T>::Frame frame(ws);
  T* dgate = ws.take(n);  // [rows, I] dL/dh, then dL/da in place
  T* dup = ws.take(n);    // [rows, I] dL/du
  // dh = dy W_down [rows, I]; dW_down += dy^T h
  down_.backward(hidden_.data(), dy, dgate, rows, false);
  // da = dh * u * silu'(a), silu'(a) = sig (1 + a (1 - sig));  du = dh * silu(a).
  for (std::size_t i = 0; i < n; ++i) {
    const T a = gate_out_[i];
    const T u = up_out_[i];
    const T sig = T(1) / (T(1) + std::exp(-a));
    const T dh = dgate[i];
    dgate[i] = dh * u * sig * (T(1) + a * (T(1) - sig));
    dup[i] = dh * a * sig;
  }
  // dx = da W_gate + du W_up
  gate_.backward(x, dgate, dx, rows, false);
  up_.backward(x, dup, dx, rows, true);
}

template class SwiGLU<float>;
template class SwiGLU<double>;

}  // namespace expt::nn
