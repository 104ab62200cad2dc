#include "core/nn/base_conv.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/util/random.hpp"

namespace expt::nn {

namespace {

int checked(int value, const char* what) {
  if (value <= 0) throw std::invalid_argument(std::string("base_conv: ") + what + " must be positive");
  return value;
}

}  // namespace

template <class T>
BaseConv<T>::BaseConv(ParameterStore<T>& store, const std::string& prefix, int d_model, int width)
    : store_(&store),
      d_(checked(d_model, "d_model")),
      width_(checked(width, "conv_size")),
      proj_(store, prefix + "projection.weight", d_model, d_model, ParamRole::matrix),
      proj_bias_id_(store.add(prefix + "projection.bias", {d_model}, ParamRole::vector)),
      conv_weight_id_(store.add(prefix + "conv.weight", {d_model, width}, ParamRole::vector)),
      conv_bias_id_(store.add(prefix + "conv.bias", {d_model}, ParamRole::vector)) {}

template <class T>
void BaseConv<T>::init_parameters(std::uint64_t seed, double /*init_std*/) {
  std::fill(store_->value(proj_bias_id_), store_->value(proj_bias_id_) + d_, T(0));
  // PyTorch's Conv1d default (kaiming_uniform with a = sqrt(5), and its bias rule): both
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels / groups * W = W.
  const double bound = 1.0 / std::sqrt(static_cast<double>(width_));
  for (const std::size_t id : {conv_weight_id_, conv_bias_id_}) {
    T* w = store_->value(id);
    const std::size_t n = store_->params()[id].size;
    for (std::size_t e = 0; e < n; ++e)
      w[e] = static_cast<T>(bound * (2.0 * rng::uniform(seed, rng::Stream::init, id, 0, e) - 1.0));
  }
}

template <class T>
void BaseConv<T>::forward(const T* x, T* y, int batch, int seq_len) {
  const int rows = batch * seq_len;
  const std::size_t n = static_cast<std::size_t>(rows) * d_;
  c_.resize(n);
  p_.resize(n);
  // p = x W_p^T + b_p
  proj_.forward(x, p_.data(), rows);
  const T* bp = store_->value(proj_bias_id_);
  for (int r = 0; r < rows; ++r)
    for (int ch = 0; ch < d_; ++ch) p_[static_cast<std::size_t>(r) * d_ + ch] += bp[ch];
  // c[t] = b_c + sum_i w[:, i] x[t - (W - 1) + i], per sequence (taps before t = 0 are zero).
  const T* w = store_->value(conv_weight_id_);
  const T* bc = store_->value(conv_bias_id_);
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < seq_len; ++t) {
      T* c = c_.data() + (static_cast<std::size_t>(b) * seq_len + t) * d_;
      for (int ch = 0; ch < d_; ++ch) c[ch] = bc[ch];
      for (int i = 0; i < width_; ++i) {
        const int src = t - (width_ - 1) + i;
        if (src < 0) continue;
        const T* xs = x + (static_cast<std::size_t>(b) * seq_len + src) * d_;
        for (int ch = 0; ch < d_; ++ch) c[ch] += w[static_cast<std::size_t>(ch) * width_ + i] * xs[ch];
      }
    }
  // y = c (.) p + x
  for (std::size_t e = 0; e < n; ++e) y[e] = c_[e] * p_[e] + x[e];
}

template <class T>
void BaseConv<T>::backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) {
  const int rows = batch * seq_len;
  const std::size_t n = static_cast<std::size_t>(rows) * d_;
  const typename Workspace<T>::Frame frame(ws);
  T* dc = ws.take(n);  // [rows, d] dL/dc = dy (.) p
  T* dp = ws.take(n);  // [rows, d] dL/dp = dy (.) c
  for (std::size_t e = 0; e < n; ++e) {
    dc[e] = dy[e] * p_[e];
    dp[e] = dy[e] * c_[e];
  }
  // Projection: dW_p += dp^T x, dx = dp W_p (overwrites dx), db_p += column sums of dp.
  proj_.backward(x, dp, dx, rows, false);
  T* dbp = store_->grad(proj_bias_id_);
  T* dbc = store_->grad(conv_bias_id_);
  for (int r = 0; r < rows; ++r)
    for (int ch = 0; ch < d_; ++ch) {
      dbp[ch] += dp[static_cast<std::size_t>(r) * d_ + ch];
      dbc[ch] += dc[static_cast<std::size_t>(r) * d_ + ch];
    }
  // Residual: dx += dy.
  for (std::size_t e = 0; e < n; ++e) dx[e] += dy[e];
  // Convolution: tap i of output t reads input t - (W - 1) + i.
  const T* w = store_->value(conv_weight_id_);
  T* dw = store_->grad(conv_weight_id_);
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < seq_len; ++t) {
      const T* dct = dc + (static_cast<std::size_t>(b) * seq_len + t) * d_;
      for (int i = 0; i < width_; ++i) {
        const int src = t - (width_ - 1) + i;
        if (src < 0) continue;
        const std::size_t row = (static_cast<std::size_t>(b) * seq_len + src) * d_;
        for (int ch = 0; ch < d_; ++ch) {
          const std::size_t k = static_cast<std::size_t>(ch) * width_ + i;
          dx[row + ch] += w[k] * dct[ch];
          dw[k] += x[row + ch] * dct[ch];
        }
      }
    }
}

template <class T>
double BaseConv<T>::core_flops_per_token(int /*seq_len*/) const {
  return 3.0 * (2.0 * width_ * d_ + 3.0 * d_);
}

template class BaseConv<float>;
template class BaseConv<double>;

}  // namespace expt::nn
