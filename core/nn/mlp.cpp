#include "core/nn/mlp.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

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

// The MLP runs in tiles of kRowTile rows: a tile's [kRowTile, I] projections (512 KiB at I = 512)
// stay in L2 between the product that writes them, the elementwise pass and the product that
// reads them, and the weight gradients are accumulated tile by tile (K = kRowTile instead of all
// rows). Every tile boundary is a fixed multiple of kRowTile from the first row of the call, so
// the result does not depend on anything but the rows passed in.
constexpr int kRowTile = 256;

template <class T>
void Mlp<T>::forward(const T* x, T* y, int rows) {
  const std::size_t n = static_cast<std::size_t>(rows) * width_;
  up_out_.resize(n);
  hidden_.resize(n);
  if (gate_) gate_out_.resize(n);
  const int d = up_.in_features();
  // Where the forward products read W^T (Linear::reads_transposed_weight: the three weights have
  // the same size, so all or none), each weight is copied once per call here, not once per tile:
  // per-thread, grow-only [d, I] x 3.
  thread_local std::vector<T> weights_t;
  const T* up_t = nullptr;
  const T* down_t = nullptr;
  const T* gate_t = nullptr;
  if (up_.reads_transposed_weight()) {
    const std::size_t w = static_cast<std::size_t>(d) * width_;
    weights_t.resize(3 * w);
    up_.transpose_weight(weights_t.data());
    down_.transpose_weight(weights_t.data() + w);
    up_t = weights_t.data();
    down_t = weights_t.data() + w;
    if (gate_) {
      gate_->transpose_weight(weights_t.data() + 2 * w);
      gate_t = weights_t.data() + 2 * w;
    }
  }
  auto project = [](const Linear<T>& layer, const T* weight_t, const T* in, T* out, int tile) {
    if (weight_t != nullptr)
      layer.forward_transposed(in, weight_t, out, tile);
    else
      layer.forward(in, out, tile);
  };
  for (int r0 = 0; r0 < rows; r0 += kRowTile) {
    const int tile = std::min(kRowTile, rows - r0);
    const std::size_t off = static_cast<std::size_t>(r0) * width_, m = static_cast<std::size_t>(tile) * width_;
    const T* xt = x + static_cast<std::size_t>(r0) * d;
    T* u = up_out_.data() + off;
    T* h = hidden_.data() + off;
    project(up_, up_t, xt, u, tile);
    if (gate_) {
      T* a = gate_out_.data() + off;
      project(*gate_, gate_t, xt, a, tile);
      // hidden = silu(a) * u = a * sigmoid(a) * u
      for (std::size_t i = 0; i < m; ++i) h[i] = a[i] * kernels::math::sigmoid(a[i]) * u[i];
    } else {
      // hidden = silu(u) = u * sigmoid(u)
      for (std::size_t i = 0; i < m; ++i) h[i] = u[i] * kernels::math::sigmoid(u[i]);
    }
    project(down_, down_t, h, y + static_cast<std::size_t>(r0) * d, tile);
  }
}

template <class T>
void Mlp<T>::backward(const T* x, const T* dy, T* dx, int rows, Workspace<T>& ws) {
  const int d = up_.in_features();
  const std::size_t tile_size = static_cast<std::size_t>(std::min(kRowTile, rows)) * width_;
  const typename Workspace<T>::Frame frame(ws);
  T* dup = ws.take(tile_size);                      // [tile, I] dL/dh, then dL/du in place
  T* dgate = gate_ ? ws.take(tile_size) : nullptr;  // [tile, I] dL/da
  for (int r0 = 0; r0 < rows; r0 += kRowTile) {
    const int tile = std::min(kRowTile, rows - r0);
    const std::size_t off = static_cast<std::size_t>(r0) * width_, m = static_cast<std::size_t>(tile) * width_;
    const std::size_t row_off = static_cast<std::size_t>(r0) * d;
    const T* xt = x + row_off;
    const T* u = up_out_.data() + off;
    T* dxt = dx + row_off;
    // dh = dy W_down [tile, I]; dW_down += dy^T h
    down_.backward(hidden_.data() + off, dy + row_off, dup, tile, false);
    if (!gate_) {
      // du = dh * silu'(u),  silu'(u) = sig (1 + u (1 - sig)).  dx = du W_up
      for (std::size_t i = 0; i < m; ++i) {
        const T sig = kernels::math::sigmoid(u[i]);
        dup[i] *= sig * (T(1) + u[i] * (T(1) - sig));
      }
      up_.backward(xt, dup, dxt, tile, false);
      continue;
    }
    // da = dh * u * silu'(a), silu'(a) = sig (1 + a (1 - sig));  du = dh * silu(a).
    const T* a = gate_out_.data() + off;
    for (std::size_t i = 0; i < m; ++i) {
      const T sig = kernels::math::sigmoid(a[i]);
      const T dh = dup[i];
      dgate[i] = dh * u[i] * sig * (T(1) + a[i] * (T(1) - sig));
      dup[i] = dh * a[i] * sig;
    }
    // dx = da W_gate + du W_up
    gate_->backward(xt, dgate, dxt, tile, false);
    up_.backward(xt, dup, dxt, tile, true);
  }
}

template class Mlp<float>;
template class Mlp<double>;

}  // namespace expt::nn
