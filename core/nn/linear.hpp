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

  // x [rows, in] -> y [rows, out]:  y = x W^T.
  void forward(const T* x, T* y, int rows) const;
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
