#include "core/nn/mlp.hpp"

#include <cmath>
#include <cstddef>
#include <stdexcept>

#include "kernels/elementwise_math.hpp"

namespace expt::nn {

int mlp_intermediate_size(const config::MlpConfig& cfg, int d_model) {
  if (cfg.intermediate_size > 0) return cfg.intermediate_size;
  if (cfg.type == "silu") return static_cast<int>(d_model * cfg.hidden_ratio);
  // Same operation order as FLA: int(hidden_size * hidden_ratio * 2 / 3), then round up to 256.
  const int raw = static_cast<int>(d_model * cfg.hidden_ratio * 2 / 3);
  return 256 * ((raw + 256 - 1) / 256);
}

namespace {

template <class T>
std::optional<Linear<T>> make_gate(ParameterStore<T>& store, const std::string& prefix, int d_model, int width,
                                   bool gated) {
  if (!gated) return std::nullopt;
  return std::optional<Linear<T>>(std::in_place, store, prefix + "gate_proj.weight", d_model, width, ParamRole::matrix);
}

}  // namespace

template <class T>
Mlp<T>::Mlp(ParameterStore<T>& store, const std::string& prefix, int d_model, int intermediate_size, bool gated)
    : gate_(make_gate(store, prefix, d_model, intermediate_size, gated)),
      up_(store, prefix + "up_proj.weight", d_model, intermediate_size, ParamRole::matrix),
      down_(store, prefix + "down_proj.weight", intermediate_size, d_model, ParamRole::matrix),
      width_(intermediate_size) {}

template <class T>
void Mlp<T>::forward(const T* x, T* y, int rows) {
  const std::size_t n = static_cast<std::size_t>(rows) * width_;
  up_out_.resize(n);
  hidden_.resize(n);
  up_.forward(x, up_out_.data(), rows);
  if (gate_) {
    gate_out_.resize(n);
    gate_->forward(x, gate_out_.data(), rows);
    // hidden = silu(a) * u = a * sigmoid(a) * u
    for (std::size_t i = 0; i < n; ++i) {
      const T a = gate_out_[i];
      const T sig = kernels::math::sigmoid(a);
      hidden_[i] = a * sig * up_out_[i];
    }
  } else {
    // hidden = silu(u) = u * sigmoid(u)
    for (std::size_t i = 0; i < n; ++i) {
      const T u = up_out_[i];
      hidden_[i] = u * kernels::math::sigmoid(u);
    }
  }
  down_.forward(hidden_.data(), y, rows);
}

template <class T>
void Mlp<T>::backward(const T* x, const T* dy, T* dx, int rows, Workspace<T>& ws) {
  const std::size_t n = static_cast<std::size_t>(rows) * width_;
  const typename Workspace<T>::Frame frame(ws);
  T* dup = ws.take(n);  // [rows, I] dL/dh, then dL/du in place
  // dh = dy W_down [rows, I]; dW_down += dy^T h
  down_.backward(hidden_.data(), dy, dup, rows, false);
  if (!gate_) {
    // du = dh * silu'(u),  silu'(u) = sig (1 + u (1 - sig)).  dx = du W_up
    for (std::size_t i = 0; i < n; ++i) {
      const T u = up_out_[i];
      const T sig = kernels::math::sigmoid(u);
      dup[i] *= sig * (T(1) + u * (T(1) - sig));
    }
    up_.backward(x, dup, dx, rows, false);
    return;
  }
  T* dgate = ws.take(n);  // [rows, I] dL/da
  // da = dh * u * silu'(a), silu'(a) = sig (1 + a (1 - sig));  du = dh * silu(a).
  for (std::size_t i = 0; i < n; ++i) {
    const T a = gate_out_[i];
    const T u = up_out_[i];
    const T sig = kernels::math::sigmoid(a);
    const T dh = dup[i];
    dgate[i] = dh * u * sig * (T(1) + a * (T(1) - sig));
    dup[i] = dh * a * sig;
  }
  // dx = da W_gate + du W_up
  gate_->backward(x, dgate, dx, rows, false);
  up_.backward(x, dup, dx, rows, true);
}

template class Mlp<float>;
template class Mlp<double>;

}  // namespace expt::nn
