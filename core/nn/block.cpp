#include "core/nn/block.hpp"

#include <algorithm>
#include <cstddef>
#include <stdexcept>

namespace expt::nn {

namespace {

bool has_mlp(const config::ModelConfig& cfg) {
  if (cfg.mlp.type == "swiglu" || cfg.mlp.type == "silu") return true;
  if (cfg.mlp.type == "none") return false;
  throw std::invalid_argument("model: unknown mlp type '" + cfg.mlp.type + "' (expected swiglu, silu or none)");
}

}  // namespace

template <class T>
Block<T>::Block(ParameterStore<T>& store, const std::string& prefix, const config::ModelConfig& cfg)
    : d_model_(cfg.d_model) {
  if (cfg.mixer.type != "none") {
    attn_norm_.emplace(store, prefix + "attn_norm.weight", cfg.d_model, cfg.norm_eps);
    mixer_ = make_mixer(store, prefix + "mixer.", cfg);
  }
  if (has_mlp(cfg)) {
    mlp_norm_.emplace(store, prefix + "mlp_norm.weight", cfg.d_model, cfg.norm_eps);
    mlp_.emplace(store, prefix + "mlp.", cfg.d_model, mlp_intermediate_size(cfg.mlp, cfg.d_model),
                 cfg.mlp.type == "swiglu");
  }
}

template <class T>
void Block<T>::forward(const T* x, T* y, int batch, int seq_len) {
  const int rows = batch * seq_len;
  const std::size_t n = static_cast<std::size_t>(rows) * d_model_;
  h_.resize(n);
  if (mixer_) {
    attn_in_.resize(n);
    branch_.resize(n);
    attn_norm_->forward(x, attn_in_.data(), rows);
    mixer_->forward(attn_in_.data(), branch_.data(), batch, seq_len);
    for (std::size_t i = 0; i < n; ++i) h_[i] = x[i] + branch_[i];
  } else {
    std::copy(x, x + n, h_.begin());
  }
  if (!mlp_) {
    std::copy(h_.begin(), h_.end(), y);
    return;
  }
  mlp_in_.resize(n);
  branch_.resize(n);
  mlp_norm_->forward(h_.data(), mlp_in_.data(), rows);
  mlp_->forward(mlp_in_.data(), branch_.data(), rows);
  for (std::size_t i = 0; i < n; ++i) y[i] = h_[i] + branch_[i];
}

template <class T>
void Block<T>::backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) {
  const int rows = batch * seq_len;
  const std::size_t n = static_cast<std::size_t>(rows) * d_model_;
  const typename Workspace<T>::Frame frame(ws);
  T* dbranch = ws.take(n);  // [rows, d] gradient at a branch input
  // dh = dy + RMSNorm_mlp'(h)^T MLP'^T dy (the residual passes dy through unchanged).
  const T* dh = dy;
  if (mlp_) {
    T* dh_mlp = ws.take(n);  // [rows, d] dL/dh
    mlp_->backward(mlp_in_.data(), dy, dbranch, rows, ws);
    mlp_norm_->backward(h_.data(), dbranch, dh_mlp, rows);
    for (std::size_t i = 0; i < n; ++i) dh_mlp[i] += dy[i];
    dh = dh_mlp;
  }
  if (!mixer_) {
    std::copy(dh, dh + n, dx);
    return;
  }
  // dx = dh + RMSNorm_attn'(x)^T Mixer'^T dh
  mixer_->backward(attn_in_.data(), dh, dbranch, batch, seq_len, ws);
  attn_norm_->backward(x, dbranch, dx, rows);
  for (std::size_t i = 0; i < n; ++i) dx[i] += dh[i];
}

template class Block<float>;
template class Block<double>;

}  // namespace expt::nn
