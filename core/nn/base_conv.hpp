// BaseConv mixer (Zoology's gated short convolution, docs/layers.md "BaseConv"): a depthwise causal
// convolution of the input gated elementwise by a linear projection of it, plus the input:
//
//   c[t, ch] = b_c[ch] + sum_{i < W} w[ch, i] x[t - (W - 1) + i, ch]     (zero before the start)
//   p        = x W_p^T + b_p
//   y        = c (.) p + x
//
// x, y [batch*seq_len, d] with rows (sequence, time); W the kernel width (model.mixer.conv_size,
// default 3 as in Zoology's MQAR configs). No activation, no output projection: the gate p is the
// only mixing across channels, the convolution the only mixing along time (W tokens back).
// Backward, with dc = dy (.) p and dp = dy (.) c:
//   dx = dy + dp W_p + sum_i w[ch, i] dc[t + (W - 1) - i, ch]
//   dW_p += dp^T x,  db_p += sum_t dp,  dw[ch, i] += sum_t x[t - (W - 1) + i, ch] dc[t, ch],
//   db_c[ch] += sum_t dc[t, ch]
//
// Parameters under `prefix`, in registration order (Zoology's names):
//   projection.weight [d, d] (matrix), projection.bias [d] (vector),
//   conv.weight [d, W] (vector; PyTorch's Conv1d weight (d, 1, W) without the 1), conv.bias [d] (vector)
// Init (Mixer::init_parameters): the projection weight N(0, init_std) like every matrix, its bias
// 0 (Zoology's _init_weights); the convolution keeps PyTorch's Conv1d default, which Zoology does
// not override: weight and bias U(-1/sqrt(W), 1/sqrt(W)) (fan_in = W for a depthwise kernel).
// Allocation: forward keeps c and p [rows, d]; backward takes dc and dp [rows, d] from the workspace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/nn/linear.hpp"
#include "core/nn/mixer.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class BaseConv final : public Mixer<T> {
 public:
  // Throws std::invalid_argument on non-positive sizes.
  BaseConv(ParameterStore<T>& store, const std::string& prefix, int d_model, int width);

  void forward(const T* x, T* y, int batch, int seq_len) override;
  void backward(const T* x, const T* dy, T* dx, int batch, int seq_len, Workspace<T>& ws) override;
  // No output projection: nothing for the `rescale` init to scale (Zoology rescales none of it).
  std::optional<std::size_t> output_weight_id() const override { return std::nullopt; }
  void init_parameters(std::uint64_t seed, double init_std) override;
  // 3 x forward's convolution (2 W per channel), its bias, the gate product and the residual.
  double core_flops_per_token(int seq_len) const override;

 private:
  ParameterStore<T>* store_;
  int d_;
  int width_;
  Linear<T> proj_;
  std::size_t proj_bias_id_;
  std::size_t conv_weight_id_;
  std::size_t conv_bias_id_;
  util::AlignedVector<T> c_;  // [rows, d] convolution output of the last forward
  util::AlignedVector<T> p_;  // [rows, d] projection output of the last forward
};

extern template class BaseConv<float>;
extern template class BaseConv<double>;

}  // namespace expt::nn
