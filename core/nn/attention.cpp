#include "core/nn/attention.hpp"

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/attention.hpp"
#include "kernels/attention_tiled.hpp"

namespace expt::nn {

namespace {
int checked_head_dim(int d_model, int heads) {
  if (heads <= 0 || d_model % heads != 0)
    throw std::invalid_argument("attention: d_model " + std::to_string(d_model) + " is not divisible by heads " +
                                std::to_string(heads));
  const int head_dim = d_model / heads;
  if (head_dim % 2 != 0)
    throw std::invalid_argument("attention: head_dim " + std::to_string(head_dim) + " must be even for RoPE");
  return head_dim;
}
}  // namespace

template <class T>
CausalSelfAttention<T>::CausalSelfAttention(ParameterStore<T>& store, const std::string& prefix, int d_model, int heads,
                                            double rope_base)
    : q_proj_(store, prefix + "q_proj.weight", d_model, d_model, ParamRole::matrix),
      k_proj_(store, prefix + "k_proj.weight", d_model, d_model, ParamRole::matrix),
      v_proj_(store, prefix + "v_proj.weight", d_model, d_model, ParamRole::matrix),
      o_proj_(store, prefix + "o_proj.weight", d_model, d_model, ParamRole::matrix),
      d_model_(d_model),
      heads_(heads),
      head_dim_(checked_head_dim(d_model, heads)),
      rope_base_(rope_base) {}

template <class T>
void CausalSelfAttention<T>::prepare_rope(int seq_len) {
  if (seq_len == rope_len_) return;
  const std::size_t n = static_cast<std::size_t>(seq_len) * (head_dim_ / 2);
  rope_cos_.resize(n);
  rope_sin_.resize(n);
  kernels::rope_table(seq_len, head_dim_, rope_base_, rope_cos_.data(), rope_sin_.data());
  rope_len_ = seq_len;
}

template <class T>
void CausalSelfAttention<T>::forward(const T* x, T* y, int batch, int seq_len) {
  const int rows = batch * seq_len;
  const std::size_t n = static_cast<std::size_t>(rows) * d_model_;
  prepare_rope(seq_len);
  q_.resize(n);
  k_.resize(n);
  v_.resize(n);
  o_.resize(n);
  lse_.resize(static_cast<std::size_t>(batch) * heads_ * seq_len);
  workspace_.resize(kernels::attention_tiled_workspace_size(kernels::AttentionTiling{}, seq_len, head_dim_));

  q_proj_.forward(x, q_.data(), rows);
  k_proj_.forward(x, k_.data(), rows);
  v_proj_.forward(x, v_.data(), rows);
  kernels::rope_apply(rope_cos_.data(), rope_sin_.data(), q_.data(), batch, seq_len, heads_, head_dim_);
  kernels::rope_apply(rope_cos_.data(), rope_sin_.data(), k_.data(), batch, seq_len, heads_, head_dim_);
  const kernels::AttentionShape shape{batch, seq_len, heads_, head_dim_};
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  kernels::attention_tiled_forward(shape, scale, q_.data(), k_.data(), v_.data(), o_.data(), lse_.data(),
                                   workspace_.data());
  o_proj_.forward(o_.data(), y, rows);
}

template <class T>
void CausalSelfAttention<T>::backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) {
  const int rows = batch * seq_len;
  const std::size_t n = static_cast<std::size_t>(rows) * d_model_;
  const typename Workspace<T>::Frame frame(ws);
  T* d_o = ws.take(n);  // [rows, d] dL/dO
  T* dq = ws.take(n);   // [rows, d]
  T* dk = ws.take(n);   // [rows, d]
  T* dv = ws.take(n);   // [rows, d]
  // dO = dy Wo, dWo += dy^T O
  o_proj_.backward(o_.data(), dy, d_o, rows, false);
  const kernels::AttentionShape shape{batch, seq_len, heads_, head_dim_};
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  kernels::attention_tiled_backward(shape, scale, q_.data(), k_.data(), v_.data(), o_.data(), lse_.data(), d_o, dq, dk,
                                    dv, workspace_.data());
  // Gradients w.r.t. the projections before RoPE: the inverse rotation.
  kernels::rope_backward(rope_cos_.data(), rope_sin_.data(), dq, batch, seq_len, heads_, head_dim_);
  kernels::rope_backward(rope_cos_.data(), rope_sin_.data(), dk, batch, seq_len, heads_, head_dim_);
  // dx = dQ Wq + dK Wk + dV Wv; each projection's weight gradient += d(out)^T x.
  q_proj_.backward(x, dq, dx, rows, false);
  k_proj_.backward(x, dk, dx, rows, true);
  v_proj_.backward(x, dv, dx, rows, true);
}

template class CausalSelfAttention<float>;
template class CausalSelfAttention<double>;

}  // namespace expt::nn
