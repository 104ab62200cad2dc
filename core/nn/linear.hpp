// Linear layer without bias, PyTorch layout: weight W [out, in] row-major, y = x W^T.
#pragma once

#include <cstddef>
#include <string>

#include "core/nn/parameter_store.hpp"

namespace expt::nn {

template <class T>
class Linear {
 public:
  // Registers `name` with shape {out_features, in_features} and the given role.
  Linear(ParameterStore<T>& store, const std::string& name, int in_features, int out_features, ParamRole role);
  // Uses an already registered [out_features, in_features] parameter as the weight (weight tying:
  // the LM head reads the embedding matrix and adds its gradient there).
  Linear(ParameterStore<T>& store, std::size_t weight_id, int in_features, int out_features);

  // x [rows, in] -> y [rows, out]:  y = x W^T. Where reads_transposed_weight(), the product
  // reads a copy W^T [in, out] made for the call (an NN product; decision 169), else W in place.
  void forward(const T* x, T* y, int rows) const;
  // The same product from weight_t = W^T [in, out] made by transpose_weight: for callers that run
  // several forwards on one weight (the MLP's row tiles) and copy it once. Same bits as forward.
  void forward_transposed(const T* x, const T* weight_t, T* y, int rows) const;
  // weight_t [in, out] = W^T, exact copies.
  void transpose_weight(T* weight_t) const;
  // fp32 products on a CPU where the NN form is the faster one (kernels::forward_reads_transposed_weight),
  // for weights of at most kMaxTransposedWeight elements (so the per-thread copies stay within a few
  // MiB; a large LM head is read in place); never for double (gradient checks) or bf16 products.
  bool reads_transposed_weight() const;
  static constexpr std::size_t kMaxTransposedWeight = std::size_t{1} << 20;  // 4 MiB of fp32
  // From dy [rows, out]: dW += dy^T x (accumulated into the store's gradient);
  // dx [rows, in] = dy W, overwritten, or added to dx when accumulate_dx (several projections of
  // the same input sum their input gradients).
  void backward(const T* x, const T* dy, T* dx, int rows, bool accumulate_dx);

  std::size_t weight_id() const { return weight_id_; }
  int in_features() const { return in_; }
  int out_features() const { return out_; }

 private:
  ParameterStore<T>* store_;
  std::size_t weight_id_;
  int in_;
  int out_;
};

extern template class Linear<float>;
extern template class Linear<double>;

}  // namespace expt::nn
