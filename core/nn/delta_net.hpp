// DeltaNet, Gated DeltaNet, DeltaProduct and Gated DeltaProduct as one mixer (fla `DeltaNet`,
// `GatedDeltaProduct`; docs/layers.md). Per token t and head h, with n_h Householder
// steps j = 1..n_h (n_h = 1: DeltaNet) and the K-major state S in R^{d_k x d_v}:
//
//   q = SiLU(Conv_q(x W_q)),  k_j = SiLU(Conv_k(x W_k))_j,  v_j = SiLU(Conv_v(x W_v))_j
//                                           (without short conv: SiLU of the projection)
//   q <- q / sqrt(|q|^2 + 1e-6),  k_j <- k_j / sqrt(|k_j|^2 + 1e-6)        (per head)
//   beta_j = sigmoid(x W_b)_j,  times 2 with allow_neg_eigval (range (0, 2))
//   g = -exp(A_log) softplus(x W_a + dt_bias)       (forget gate; g = 0 without it)
//   S_t = exp(g_t) S_{t-1}, then for j = 1..n_h: S_t <- (I - beta_j k_j k_j^T) S_t + beta_j k_j v_j^T
//   o_t = d_k^(-1/2) S_t^T q_t
//   y = RMSNorm_{d_v}(o_h) (.) w  [(.) SiLU(x W_g) with the output gate],  out = concat_h(y_h) W_o
//
// Parameters under `prefix`, in registration order (fla names and fused layouts: in k, v and
// beta the step index j is the slowest, feature j*H*d + h*d + m):
//   q_proj.weight [H d_k, d], k_proj.weight [n_h H d_k, d], v_proj.weight [n_h H d_v, d],
//   b_proj.weight [n_h H, d]                                           role matrix
//   a_proj.weight [H, d] (matrix), A_log [H], dt_bias [H] (vector)      forget gate only
//   q_conv1d.weight [H d_k, W], k_conv1d.weight [n_h H d_k, W],
//   v_conv1d.weight [n_h H d_v, W]                                     role vector; short conv only
//   g_proj.weight [H d_v, d]                                           matrix; output gate only
//   o_norm.weight [d_v] (vector), o_proj.weight [d, H d_v] (matrix)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/nn/gated_output.hpp"
#include "core/nn/linear.hpp"
#include "core/nn/mixer.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/short_convolution.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

struct DeltaNetOptions {
  int d_model = 0;
  int heads = 4;
  int key_dim = 0;            // d_k per head
  int value_dim = 0;          // d_v per head
  int householder_steps = 1;  // n_h
  // true: the DeltaProduct kernel (virtual sequence of length T n_h, chunk_size counts virtual
  // steps); false: the delta-rule kernel directly (requires n_h = 1).
  bool product_kernel = false;
  bool allow_neg_eigval = false;
  bool use_forget_gate = false;
  bool use_short_conv = true;
  int conv_size = 4;
  bool use_output_gate = false;
  int chunk_size = 64;
  double norm_eps = 1e-5;  // of the output RMSNorm
};

template <class T>
class DeltaNet final : public Mixer<T> {
 public:
  // Throws std::invalid_argument on non-positive sizes, or n_h > 1 without the product kernel.
  DeltaNet(ParameterStore<T>& store, const std::string& prefix, const DeltaNetOptions& options);

  void forward(const T* x, T* y, int batch, int seq_len) override;
  // Gradient scratch (do, dgate, dq, dk, dv, dbeta, dg, dpre; the output head's dnormed) from ws.
  void backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) override;
  std::optional<std::size_t> output_weight_id() const override { return out_.output_weight_id(); }
  // Conv weights N(0, init_std); A_log = log(U(0, 16)); dt = exp(U(log 1e-3, log 1e-1)) clamped
  // at >= 1e-4 and dt_bias = dt + log(-expm1(-dt)) (the inverse softplus of dt), docs/layers.md.
  void init_parameters(std::uint64_t seed, double init_std) override;
  // 3 x forward, forward per head and virtual step ~ 6 d_k d_v + C (3 d_k + 2 d_v) (docs/derivations/delta_rule.md).
  double core_flops_per_token(int seq_len) const override;

  const DeltaNetOptions& options() const { return opt_; }

 private:
  // Short conv + SiLU (or SiLU alone) of a projection, forward and backward.
  void activate_forward(const std::optional<ShortConvolution<T>>& conv, const T* pre, T* act, int channels, int batch,
                        int seq_len);
  void activate_backward(std::optional<ShortConvolution<T>>& conv, const T* pre, const T* dact, T* dpre, int channels,
                         int batch, int seq_len);

  DeltaNetOptions opt_;
  ParameterStore<T>* store_;
  Linear<T> q_proj_;
  Linear<T> k_proj_;
  Linear<T> v_proj_;
  Linear<T> b_proj_;
  std::optional<Linear<T>> a_proj_;
  std::optional<std::size_t> a_log_id_;
  std::optional<std::size_t> dt_bias_id_;
  std::optional<ShortConvolution<T>> q_conv_;  // short conv + SiLU of each projection (use_short_conv)
  std::optional<ShortConvolution<T>> k_conv_;
  std::optional<ShortConvolution<T>> v_conv_;
  std::optional<Linear<T>> g_proj_;
  GatedOutput<T> out_;  // o_norm.weight, o_proj.weight; output gate through g_proj_

  // Activations of the last forward; rows = batch * seq_len, Q = H d_k, K = n_h H d_k,
  // V = n_h H d_v, O = H d_v.
  util::AlignedVector<T> q_pre_, k_pre_, v_pre_;  // [rows, Q|K|V] projections
  util::AlignedVector<T> q_act_, k_act_, v_;      // [rows, Q|K|V] after (conv +) SiLU; v_ feeds the kernel
  util::AlignedVector<T> q_, k_;                  // [rows, Q|K] L2-normalised
  util::AlignedVector<T> q_rstd_, k_rstd_;        // [rows, H] / [rows, n_h H]
  util::AlignedVector<T> beta_logit_, beta_;      // [rows, n_h H]
  util::AlignedVector<T> a_logit_, g_;            // [rows, H] forget gate
  util::AlignedVector<T> o_;                      // [rows, O] kernel output
};

extern template class DeltaNet<float>;
extern template class DeltaNet<double>;

}  // namespace expt::nn
