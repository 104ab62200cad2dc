// Gated Linear Attention mixer (fla `GatedLinearAttention`, docs/layers.md). With D_k = int(d
// expand_k), D_v = int(d expand_v) split into H heads of d_k = D_k / H and d_v = D_v / H:
//
//   Q = x W_q, K = x W_k, V = x W_v                  [optional: each <- SiLU(ShortConv(.))]
//   Z = (x W_a1) W_a2 + b_a                          (low-rank gate projection d -> r -> D_k)
//   G = logsigmoid(Z) / tau                          (per-channel log-decay <= 0)
//   S_t = Diag(exp(g_t)) S_{t-1} + k_t v_t^T,  o_t = d_k^(-1/2) S_t^T q_t     (per head)
//   y_h = RMSNorm_{d_v}(o_h) (.) w [(.) SiLU(x W_r)_h with the output gate],  out = concat_h(y_h) W_o
//
// Parameters under `prefix`, in registration order (fla names):
//   q_proj.weight [D_k, d], k_proj.weight [D_k, d], v_proj.weight [D_v, d]        role matrix
//   g_proj.weight [D_v, d]                                       matrix; output gate only
//   q_conv1d.weight [D_k, W], k_conv1d.weight [D_k, W], v_conv1d.weight [D_v, W]  vector; short conv only
//   gk_proj.0.weight [r, d], gk_proj.1.weight [D_k, r] (matrix), gk_proj.1.bias [D_k] (vector)
//   g_norm.weight [d_v] (vector), o_proj.weight [d, D_v] (matrix)
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

struct GlaOptions {
  int d_model = 0;
  int heads = 4;
  int key_dim = 0;    // d_k per head
  int value_dim = 0;  // d_v per head
  int gate_low_rank_dim = 16;
  double gate_logit_normalizer = 16.0;
  bool use_short_conv = false;
  int conv_size = 4;
  bool use_output_gate = true;
  int chunk_size = 64;
  double norm_eps = 1e-5;  // of the output RMSNorm
};

template <class T>
class GatedLinearAttention final : public Mixer<T> {
 public:
  // Throws std::invalid_argument on non-positive sizes.
  GatedLinearAttention(ParameterStore<T>& store, const std::string& prefix, const GlaOptions& options);

  void forward(const T* x, T* y, int batch, int seq_len) override;
  // Gradient scratch (do, dgate, dq, dk, dv, dg, dz_low, dpre; the output head's dnormed) from ws.
  void backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) override;
  std::optional<std::size_t> output_weight_id() const override { return out_.output_weight_id(); }
  // Conv weights N(0, init_std), the gate bias 0.
  void init_parameters(std::uint64_t seed, double init_std) override;
  // 3 x forward; forward per head ~ 4 d_k d_v + 2 C (d_k + d_v) (docs/derivations/gla.md, full C x C blocks).
  double core_flops_per_token(int seq_len) const override;

  const GlaOptions& options() const { return opt_; }

 private:
  GlaOptions opt_;
  ParameterStore<T>* store_;
  Linear<T> q_proj_;
  Linear<T> k_proj_;
  Linear<T> v_proj_;
  std::optional<Linear<T>> g_proj_;
  std::optional<ShortConvolution<T>> q_conv_;  // short conv + SiLU of each projection (use_short_conv)
  std::optional<ShortConvolution<T>> k_conv_;
  std::optional<ShortConvolution<T>> v_conv_;
  Linear<T> gk_down_;  // gk_proj.0: d -> r
  Linear<T> gk_up_;    // gk_proj.1: r -> D_k (plus bias)
  std::size_t gk_bias_id_;
  GatedOutput<T> out_;  // g_norm.weight, o_proj.weight; output gate through g_proj_

  // Activations of the last forward (rows = batch * seq_len).
  util::AlignedVector<T> q_pre_, k_pre_, v_pre_;  // [rows, D_k|D_k|D_v] projections (short conv only)
  util::AlignedVector<T> q_, k_, v_;              // [rows, D_k|D_k|D_v] kernel inputs
  util::AlignedVector<T> z_low_;                  // [rows, r]
  util::AlignedVector<T> z_;                      // [rows, D_k] gate logits
  util::AlignedVector<T> g_;                      // [rows, D_k] log-decay
  util::AlignedVector<T> o_;                      // [rows, D_v] kernel output
};

extern template class GatedLinearAttention<float>;
extern template class GatedLinearAttention<double>;

}  // namespace expt::nn
