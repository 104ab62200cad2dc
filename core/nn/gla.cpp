#include "core/nn/gla.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/util/random.hpp"
#include "kernels/elementwise_math.hpp"
#include "kernels/gla.hpp"

namespace expt::nn {

namespace {

using kernels::math::log_sigmoid;
using kernels::math::sigmoid;

const GlaOptions& checked(const GlaOptions& o) {
  if (o.d_model <= 0 || o.heads <= 0 || o.key_dim <= 0 || o.value_dim <= 0 || o.gate_low_rank_dim <= 0 ||
      o.chunk_size <= 0 || !(o.gate_logit_normalizer > 0) || (o.use_short_conv && o.conv_size <= 0))
    throw std::invalid_argument("gla: sizes and gate_logit_normalizer must be positive");
  return o;
}

}  // namespace

template <class T>
GatedLinearAttention<T>::GatedLinearAttention(ParameterStore<T>& store, const std::string& prefix,
                                              const GlaOptions& options)
    : opt_(checked(options)),
      store_(&store),
      q_proj_(store, prefix + "q_proj.weight", options.d_model, options.heads * options.key_dim, ParamRole::matrix),
      k_proj_(store, prefix + "k_proj.weight", options.d_model, options.heads * options.key_dim, ParamRole::matrix),
      v_proj_(store, prefix + "v_proj.weight", options.d_model, options.heads * options.value_dim, ParamRole::matrix),
      g_proj_(options.use_output_gate
                  ? std::optional<Linear<T>>(std::in_place, store, prefix + "g_proj.weight", options.d_model,
                                             options.heads * options.value_dim, ParamRole::matrix)
                  : std::nullopt),
      q_conv_(make_short_convolution(options.use_short_conv, store, prefix + "q_conv1d.weight",
                                     options.heads * options.key_dim, options.conv_size)),
      k_conv_(make_short_convolution(options.use_short_conv, store, prefix + "k_conv1d.weight",
                                     options.heads * options.key_dim, options.conv_size)),
      v_conv_(make_short_convolution(options.use_short_conv, store, prefix + "v_conv1d.weight",
                                     options.heads * options.value_dim, options.conv_size)),
      gk_down_(store, prefix + "gk_proj.0.weight", options.d_model, options.gate_low_rank_dim, ParamRole::matrix),
      gk_up_(store, prefix + "gk_proj.1.weight", options.gate_low_rank_dim, options.heads * options.key_dim,
             ParamRole::matrix),
      gk_bias_id_(store.add(prefix + "gk_proj.1.bias", {options.heads * options.key_dim}, ParamRole::vector)),
      out_(store, prefix + "g_norm.weight", prefix + "o_proj.weight", options.d_model, options.heads, options.value_dim,
           options.norm_eps, g_proj_ ? &*g_proj_ : nullptr) {}

template <class T>
void GatedLinearAttention<T>::init_parameters(std::uint64_t seed, double init_std) {
  for (auto* conv : {&q_conv_, &k_conv_, &v_conv_})
    if (*conv) (*conv)->init_parameters(seed, init_std);
  T* bias = store_->value(gk_bias_id_);
  std::fill(bias, bias + store_->params()[gk_bias_id_].size, T(0));
}

template <class T>
double GatedLinearAttention<T>::core_flops_per_token(int seq_len) const {
  const double dk = opt_.key_dim, dv = opt_.value_dim;
  const double chunk = std::min(opt_.chunk_size, seq_len);
  return 3.0 * opt_.heads * (4 * dk * dv + 2 * chunk * (dk + dv));
}

template <class T>
void GatedLinearAttention<T>::forward(const T* x, T* y, int batch, int seq_len) {
  const int H = opt_.heads, dk = opt_.key_dim, dv = opt_.value_dim, r = opt_.gate_low_rank_dim;
  const int rows = batch * seq_len;
  const int DK = H * dk, DV = H * dv;
  const auto sz = [rows](int width) { return static_cast<std::size_t>(rows) * width; };
  q_.resize(sz(DK));
  k_.resize(sz(DK));
  v_.resize(sz(DV));
  z_low_.resize(sz(r));
  z_.resize(sz(DK));
  g_.resize(sz(DK));
  o_.resize(sz(DV));

  // q, k, v: projections, through ShortConv + SiLU when enabled.
  if (opt_.use_short_conv) {
    q_pre_.resize(sz(DK));
    k_pre_.resize(sz(DK));
    v_pre_.resize(sz(DV));
    q_proj_.forward(x, q_pre_.data(), rows);
    k_proj_.forward(x, k_pre_.data(), rows);
    v_proj_.forward(x, v_pre_.data(), rows);
    q_conv_->forward(q_pre_.data(), q_.data(), batch, seq_len);
    k_conv_->forward(k_pre_.data(), k_.data(), batch, seq_len);
    v_conv_->forward(v_pre_.data(), v_.data(), batch, seq_len);
  } else {
    q_proj_.forward(x, q_.data(), rows);
    k_proj_.forward(x, k_.data(), rows);
    v_proj_.forward(x, v_.data(), rows);
  }

  // Z = (x W_a1) W_a2 + b,  G = logsigmoid(Z) / tau.
  gk_down_.forward(x, z_low_.data(), rows);
  gk_up_.forward(z_low_.data(), z_.data(), rows);
  const T* bias = store_->value(gk_bias_id_);
  const T inv_tau = static_cast<T>(1.0 / opt_.gate_logit_normalizer);
  for (int row = 0; row < rows; ++row)
    for (int c = 0; c < DK; ++c) {
      const std::size_t i = static_cast<std::size_t>(row) * DK + c;
      z_[i] += bias[c];
      g_[i] = log_sigmoid(z_[i]) * inv_tau;
    }

  const kernels::GlaShape shape{batch, seq_len, H, dk, dv};
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dk)));
  const kernels::GlaInputs<T> in{q_.data(), k_.data(), v_.data(), g_.data(), nullptr};
  const kernels::GlaChunking chunking{opt_.chunk_size, std::min(16, opt_.chunk_size)};
  kernels::gla_chunked_forward(shape, scale, in, o_.data(), static_cast<T*>(nullptr), chunking);

  out_.forward(x, o_.data(), y, rows);
}

template <class T>
void GatedLinearAttention<T>::backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) {
  const int H = opt_.heads, dk = opt_.key_dim, dv = opt_.value_dim, r = opt_.gate_low_rank_dim;
  const int rows = batch * seq_len;
  const int DK = H * dk, DV = H * dv;
  const auto sz = [rows](int width) { return static_cast<std::size_t>(rows) * width; };
  const typename Workspace<T>::Frame frame(ws);
  T* const d_o = ws.take(sz(DV));
  T* const dq = ws.take(sz(DK));
  T* const dkey = ws.take(sz(DK));
  T* const dvalue = ws.take(sz(DV));
  T* const dg = ws.take(sz(DK));
  T* const dz_low = ws.take(sz(r));
  T* const dgate = out_.has_gate() ? ws.take(sz(DV)) : nullptr;

  // o_proj, the norm and the output gate: do = dL/do.
  out_.backward(o_.data(), dy, d_o, dgate, rows, ws);

  const kernels::GlaShape shape{batch, seq_len, H, dk, dv};
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dk)));
  const kernels::GlaInputs<T> in{q_.data(), k_.data(), v_.data(), g_.data(), nullptr};
  const kernels::GlaGradients<T> grads{dq, dkey, dvalue, dg, nullptr};
  const kernels::GlaChunking chunking{opt_.chunk_size, std::min(16, opt_.chunk_size)};
  kernels::gla_chunked_backward(shape, scale, in, d_o, static_cast<const T*>(nullptr), grads, chunking);

  // g = logsigmoid(z) / tau: dz = dg sigmoid(-z) / tau (in place in dg_); db += sum over rows.
  T* dbias = store_->grad(gk_bias_id_);
  const T inv_tau = static_cast<T>(1.0 / opt_.gate_logit_normalizer);
  for (int row = 0; row < rows; ++row)
    for (int c = 0; c < DK; ++c) {
      const std::size_t i = static_cast<std::size_t>(row) * DK + c;
      dg[i] *= sigmoid(-z_[i]) * inv_tau;
      dbias[c] += dg[i];
    }
  gk_up_.backward(z_low_.data(), dg, dz_low, rows, false);
  gk_down_.backward(x, dz_low, dx, rows, false);
  out_.backward_gate(x, dgate, dx, rows, true);

  if (opt_.use_short_conv) {
    T* const dpre = ws.take(sz(std::max(DK, DV)));
    q_conv_->backward(q_pre_.data(), dq, dpre, batch, seq_len);
    q_proj_.backward(x, dpre, dx, rows, true);
    k_conv_->backward(k_pre_.data(), dkey, dpre, batch, seq_len);
    k_proj_.backward(x, dpre, dx, rows, true);
    v_conv_->backward(v_pre_.data(), dvalue, dpre, batch, seq_len);
    v_proj_.backward(x, dpre, dx, rows, true);
  } else {
    q_proj_.backward(x, dq, dx, rows, true);
    k_proj_.backward(x, dkey, dx, rows, true);
    v_proj_.backward(x, dvalue, dx, rows, true);
  }
}

template class GatedLinearAttention<float>;
template class GatedLinearAttention<double>;

}  // namespace expt::nn
