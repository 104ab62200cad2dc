// Causal multi-head softmax self-attention with RoPE (FLA `Attention`, docs/derivations/attention.md):
//   Q = x Wq^T, K = x Wk^T, V = x Wv^T          (d -> d, no bias)
//   Q, K <- RoPE(Q), RoPE(K) per head            (rotate-half, theta = rope_base)
//   O_h = softmax(s Q_h K_h^T + causal mask) V_h, s = head_dim^(-1/2)
//   y = O Wo^T                                   (d -> d, no bias)
// with head_dim = d / heads. Parameters prefix + "q_proj.weight", "k_proj.weight",
// "v_proj.weight", "o_proj.weight", all role `matrix`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/nn/linear.hpp"
#include "core/nn/mixer.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class CausalSelfAttention final : public Mixer<T> {
 public:
  // Throws std::invalid_argument unless heads divides d_model and head_dim is even (RoPE pairs).
  CausalSelfAttention(ParameterStore<T>& store, const std::string& prefix, int d_model, int heads, double rope_base);

  // x [batch*seq_len, d] -> y [batch*seq_len, d]; caches rotated Q, K, V, O and the log-sum-exp.
  void forward(const T* x, T* y, int batch, int seq_len) override;
  // From dy: parameter gradients accumulated, dx [batch*seq_len, d] overwritten. Same x and shape
  // as the last forward. Scratch dO, dQ, dK, dV (4 x [rows, d]) from ws.
  void backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) override;
  std::optional<std::size_t> output_weight_id() const override { return o_proj_.weight_id(); }
  // Every parameter is a Linear weight: nothing beyond Model's default init.
  void init_parameters(std::uint64_t, double) override {}
  // Causal QK^T and PV: 4 d (t+1) forward at position t, averaged over t = 0..L-1 gives
  // 2 d (L+1); backward is twice the forward.
  double core_flops_per_token(int seq_len) const override { return 6.0 * d_model_ * (seq_len + 1); }

  const Linear<T>& q_proj() const { return q_proj_; }
  const Linear<T>& k_proj() const { return k_proj_; }
  const Linear<T>& v_proj() const { return v_proj_; }
  const Linear<T>& o_proj() const { return o_proj_; }
  int heads() const { return heads_; }

 private:
  // Rebuilds the RoPE cos/sin tables when seq_len changes.
  void prepare_rope(int seq_len);

  Linear<T> q_proj_;
  Linear<T> k_proj_;
  Linear<T> v_proj_;
  Linear<T> o_proj_;
  int d_model_;
  int heads_;
  int head_dim_;
  double rope_base_;
  int rope_len_ = -1;
  util::AlignedVector<T> rope_cos_;   // [seq_len, head_dim/2]
  util::AlignedVector<T> rope_sin_;   // [seq_len, head_dim/2]
  util::AlignedVector<T> q_;          // [rows, d] after RoPE
  util::AlignedVector<T> k_;          // [rows, d] after RoPE
  util::AlignedVector<T> v_;          // [rows, d]
  util::AlignedVector<T> o_;          // [rows, d] attention output before o_proj
  util::AlignedVector<T> lse_;        // [batch, heads, seq_len]
  util::AlignedVector<T> workspace_;  // attention kernel scratch
};

extern template class CausalSelfAttention<float>;
extern template class CausalSelfAttention<double>;

}  // namespace expt::nn
