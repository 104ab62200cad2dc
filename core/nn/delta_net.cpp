#include "core/nn/delta_net.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/nn/l2norm.hpp"
#include "core/util/random.hpp"
#include "kernels/delta_product.hpp"
#include "kernels/delta_rule.hpp"
#include "kernels/elementwise_math.hpp"

namespace expt::nn {

namespace {

using kernels::math::sigmoid;
using kernels::math::softplus;

const DeltaNetOptions& checked(const DeltaNetOptions& o) {
  if (o.d_model <= 0 || o.heads <= 0 || o.key_dim <= 0 || o.value_dim <= 0 || o.householder_steps <= 0 ||
      o.chunk_size <= 0 || (o.use_short_conv && o.conv_size <= 0))
    throw std::invalid_argument("deltanet: sizes must be positive");
  if (o.householder_steps > 1 && !o.product_kernel)
    throw std::invalid_argument("deltanet: num_householder > 1 needs the DeltaProduct kernel");
  return o;
}

}  // namespace

template <class T>
DeltaNet<T>::DeltaNet(ParameterStore<T>& store, const std::string& prefix, const DeltaNetOptions& options)
    : opt_(checked(options)),
      store_(&store),
      q_proj_(store, prefix + "q_proj.weight", options.d_model, options.heads * options.key_dim, ParamRole::matrix),
      k_proj_(store, prefix + "k_proj.weight", options.d_model,
              options.householder_steps * options.heads * options.key_dim, ParamRole::matrix),
      v_proj_(store, prefix + "v_proj.weight", options.d_model,
              options.householder_steps * options.heads * options.value_dim, ParamRole::matrix),
      b_proj_(store, prefix + "b_proj.weight", options.d_model, options.householder_steps * options.heads,
              ParamRole::matrix),
      a_proj_(options.use_forget_gate ? std::optional<Linear<T>>(std::in_place, store, prefix + "a_proj.weight",
                                                                 options.d_model, options.heads, ParamRole::matrix)
                                      : std::nullopt),
      a_log_id_(options.use_forget_gate
                    ? std::optional<std::size_t>(store.add(prefix + "A_log", {options.heads}, ParamRole::vector))
                    : std::nullopt),
      dt_bias_id_(options.use_forget_gate
                      ? std::optional<std::size_t>(store.add(prefix + "dt_bias", {options.heads}, ParamRole::vector))
                      : std::nullopt),
      q_conv_(make_short_convolution(options.use_short_conv, store, prefix + "q_conv1d.weight",
                                     options.heads * options.key_dim, options.conv_size)),
      k_conv_(make_short_convolution(options.use_short_conv, store, prefix + "k_conv1d.weight",
                                     options.householder_steps * options.heads * options.key_dim, options.conv_size)),
      v_conv_(make_short_convolution(options.use_short_conv, store, prefix + "v_conv1d.weight",
                                     options.householder_steps * options.heads * options.value_dim, options.conv_size)),
      g_proj_(options.use_output_gate
                  ? std::optional<Linear<T>>(std::in_place, store, prefix + "g_proj.weight", options.d_model,
                                             options.heads * options.value_dim, ParamRole::matrix)
                  : std::nullopt),
      out_(store, prefix + "o_norm.weight", prefix + "o_proj.weight", options.d_model, options.heads, options.value_dim,
           options.norm_eps, g_proj_ ? &*g_proj_ : nullptr) {}

template <class T>
void DeltaNet<T>::init_parameters(std::uint64_t seed, double init_std) {
  for (auto* conv : {&q_conv_, &k_conv_, &v_conv_})
    if (*conv) (*conv)->init_parameters(seed, init_std);
  if (a_log_id_) {
    T* a_log = store_->value(*a_log_id_);
    T* dt_bias = store_->value(*dt_bias_id_);
    for (int h = 0; h < opt_.heads; ++h) {
      // A ~ U(0, 16]: 1 - u keeps log(A) finite (u in [0, 1)).
      const double a = 16.0 * (1.0 - rng::uniform(seed, rng::Stream::init, *a_log_id_, 0, h));
      a_log[h] = static_cast<T>(std::log(a));
      const double u = rng::uniform(seed, rng::Stream::init, *dt_bias_id_, 0, h);
      const double dt = std::max(1e-4, std::exp(std::log(1e-3) + u * (std::log(1e-1) - std::log(1e-3))));
      dt_bias[h] = static_cast<T>(dt + std::log(-std::expm1(-dt)));
    }
  }
}

template <class T>
double DeltaNet<T>::core_flops_per_token(int seq_len) const {
  const double dk = opt_.key_dim, dv = opt_.value_dim;
  const double chunk = std::min<double>(opt_.chunk_size, static_cast<double>(seq_len) * opt_.householder_steps);
  const double per_step = 6 * dk * dv + chunk * (3 * dk + 2 * dv);
  return 3.0 * opt_.heads * opt_.householder_steps * per_step;
}

template <class T>
void DeltaNet<T>::activate_forward(const std::optional<ShortConvolution<T>>& conv, const T* pre, T* act, int channels,
                                   int batch, int seq_len) {
  const std::size_t n = static_cast<std::size_t>(batch) * seq_len * channels;
  if (conv) {
    conv->forward(pre, act, batch, seq_len);
    return;
  }
  for (std::size_t i = 0; i < n; ++i) act[i] = pre[i] * sigmoid(pre[i]);
}

template <class T>
void DeltaNet<T>::activate_backward(std::optional<ShortConvolution<T>>& conv, const T* pre, const T* dact, T* dpre,
                                    int channels, int batch, int seq_len) {
  const std::size_t n = static_cast<std::size_t>(batch) * seq_len * channels;
  if (conv) {
    conv->backward(pre, dact, dpre, batch, seq_len);
    return;
  }
  // SiLU'(z) = sig(z) (1 + z (1 - sig(z)))
  for (std::size_t i = 0; i < n; ++i) {
    const T s = sigmoid(pre[i]);
    dpre[i] = dact[i] * s * (T(1) + pre[i] * (T(1) - s));
  }
}

template <class T>
void DeltaNet<T>::forward(const T* x, T* y, int batch, int seq_len) {
  const int H = opt_.heads, nh = opt_.householder_steps, dk = opt_.key_dim, dv = opt_.value_dim;
  const int rows = batch * seq_len;
  const int Q = H * dk, K = nh * H * dk, V = nh * H * dv, O = H * dv;
  const auto sz = [rows](int width) { return static_cast<std::size_t>(rows) * width; };
  q_pre_.resize(sz(Q));
  k_pre_.resize(sz(K));
  v_pre_.resize(sz(V));
  q_act_.resize(sz(Q));
  k_act_.resize(sz(K));
  v_.resize(sz(V));
  q_.resize(sz(Q));
  k_.resize(sz(K));
  q_rstd_.resize(sz(H));
  k_rstd_.resize(sz(nh * H));
  beta_logit_.resize(sz(nh * H));
  beta_.resize(sz(nh * H));
  o_.resize(sz(O));

  // q, k, v: projection, (conv +) SiLU, and per-head L2 norm of q and k.
  q_proj_.forward(x, q_pre_.data(), rows);
  k_proj_.forward(x, k_pre_.data(), rows);
  v_proj_.forward(x, v_pre_.data(), rows);
  activate_forward(q_conv_, q_pre_.data(), q_act_.data(), Q, batch, seq_len);
  activate_forward(k_conv_, k_pre_.data(), k_act_.data(), K, batch, seq_len);
  activate_forward(v_conv_, v_pre_.data(), v_.data(), V, batch, seq_len);
  const T eps = static_cast<T>(kL2NormEps);
  l2norm_forward(q_act_.data(), q_.data(), q_rstd_.data(), sz(H), dk, eps);
  l2norm_forward(k_act_.data(), k_.data(), k_rstd_.data(), sz(nh * H), dk, eps);

  // beta = sigmoid(x W_b), doubled for the extended eigenvalue range (-1, 1].
  b_proj_.forward(x, beta_logit_.data(), rows);
  const T beta_scale = opt_.allow_neg_eigval ? T(2) : T(1);
  for (std::size_t i = 0; i < beta_.size(); ++i) beta_[i] = beta_scale * sigmoid(beta_logit_[i]);

  // g = -exp(A_log) softplus(x W_a + dt_bias) <= 0, one per head and token.
  const T* g = nullptr;
  if (a_proj_) {
    a_logit_.resize(sz(H));
    g_.resize(sz(H));
    a_proj_->forward(x, a_logit_.data(), rows);
    const T* a_log = store_->value(*a_log_id_);
    const T* dt_bias = store_->value(*dt_bias_id_);
    for (int r = 0; r < rows; ++r)
      for (int h = 0; h < H; ++h) {
        const std::size_t i = static_cast<std::size_t>(r) * H + h;
        g_[i] = -std::exp(a_log[h]) * softplus(a_logit_[i] + dt_bias[h]);
      }
    g = g_.data();
  }

  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dk)));
  const kernels::DeltaRuleInputs<T> in{q_.data(), k_.data(), v_.data(), beta_.data(), g, nullptr};
  if (opt_.product_kernel) {
    const kernels::DeltaProductShape shape{batch, seq_len, H, dk, dv, nh};
    kernels::delta_product_forward(shape, scale, in, o_.data(), static_cast<T*>(nullptr), opt_.chunk_size);
  } else {
    const kernels::DeltaRuleShape shape{batch, seq_len, H, dk, dv};
    kernels::delta_rule_chunked_forward(shape, scale, in, o_.data(), static_cast<T*>(nullptr), opt_.chunk_size);
  }

  // Output norm (and gate), then o_proj.
  out_.forward(x, o_.data(), y, rows);
}

template <class T>
void DeltaNet<T>::backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) {
  const int H = opt_.heads, nh = opt_.householder_steps, dk = opt_.key_dim, dv = opt_.value_dim;
  const int rows = batch * seq_len;
  const int Q = H * dk, K = nh * H * dk, V = nh * H * dv, O = H * dv;
  const auto sz = [rows](int width) { return static_cast<std::size_t>(rows) * width; };
  const typename Workspace<T>::Frame frame(ws);
  T* const d_o = ws.take(sz(O));
  T* const dq = ws.take(sz(Q));
  T* const dkey = ws.take(sz(K));
  T* const dvalue = ws.take(sz(V));
  T* const dbeta = ws.take(sz(nh * H));
  T* const dpre = ws.take(sz(std::max({Q, K, V})));
  T* const dgate = out_.has_gate() ? ws.take(sz(O)) : nullptr;
  T* const dg = a_proj_ ? ws.take(sz(H)) : nullptr;

  // o_proj, the norm and the output gate: do = dL/do. dx starts with the output gate's path (or
  // the first projection below overwrites it).
  out_.backward(o_.data(), dy, d_o, dgate, rows, ws);
  bool dx_written = out_.backward_gate(x, dgate, dx, rows, false);

  // The kernel: dq, dk (w.r.t. the normalised q, k), dv, dbeta, dg.
  const T* g = a_proj_ ? g_.data() : nullptr;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dk)));
  const kernels::DeltaRuleInputs<T> in{q_.data(), k_.data(), v_.data(), beta_.data(), g, nullptr};
  const kernels::DeltaRuleGradients<T> grads{dq, dkey, dvalue, dbeta, dg, nullptr};
  if (opt_.product_kernel) {
    const kernels::DeltaProductShape shape{batch, seq_len, H, dk, dv, nh};
    kernels::delta_product_backward(shape, scale, in, d_o, static_cast<const T*>(nullptr), grads, opt_.chunk_size);
  } else {
    const kernels::DeltaRuleShape shape{batch, seq_len, H, dk, dv};
    kernels::delta_rule_chunked_backward(shape, scale, in, d_o, static_cast<const T*>(nullptr), grads, opt_.chunk_size);
  }

  // Forget gate: g = -e^A softplus(u), u = a_logit + dt_bias:
  //   dA_log += dg g,   du = -dg e^A sigmoid(u),   ddt_bias += du,   da_logit = du.
  if (a_proj_) {
    const T* a_log = store_->value(*a_log_id_);
    const T* dt_bias = store_->value(*dt_bias_id_);
    T* da_log = store_->grad(*a_log_id_);
    T* ddt_bias = store_->grad(*dt_bias_id_);
    for (int r = 0; r < rows; ++r)
      for (int h = 0; h < H; ++h) {
        const std::size_t i = static_cast<std::size_t>(r) * H + h;
        da_log[h] += dg[i] * g_[i];
        const T du = -dg[i] * std::exp(a_log[h]) * sigmoid(a_logit_[i] + dt_bias[h]);
        ddt_bias[h] += du;
        dg[i] = du;  // now dL/da_logit
      }
    a_proj_->backward(x, dg, dx, rows, dx_written);
    dx_written = true;
  }

  // beta = c sigmoid(z): dz = dbeta c sigmoid(z) (1 - sigmoid(z)); dbeta is reused for dz.
  const T beta_scale = opt_.allow_neg_eigval ? T(2) : T(1);
  for (std::size_t i = 0, n = sz(nh * H); i < n; ++i) {
    const T s = sigmoid(beta_logit_[i]);
    dbeta[i] *= beta_scale * s * (T(1) - s);
  }
  b_proj_.backward(x, dbeta, dx, rows, dx_written);

  // q, k: through the L2 norm (in place), the activation and the projection; v: activation and
  // projection.
  l2norm_backward(q_.data(), q_rstd_.data(), dq, dq, sz(H), dk);
  l2norm_backward(k_.data(), k_rstd_.data(), dkey, dkey, sz(nh * H), dk);
  activate_backward(q_conv_, q_pre_.data(), dq, dpre, Q, batch, seq_len);
  q_proj_.backward(x, dpre, dx, rows, true);
  activate_backward(k_conv_, k_pre_.data(), dkey, dpre, K, batch, seq_len);
  k_proj_.backward(x, dpre, dx, rows, true);
  activate_backward(v_conv_, v_pre_.data(), dvalue, dpre, V, batch, seq_len);
  v_proj_.backward(x, dpre, dx, rows, true);
}

template class DeltaNet<float>;
template class DeltaNet<double>;

}  // namespace expt::nn
