// RMSNorm over the feature dimension with a learned gain w (role `vector`, initialised to 1):
//   y = x * rstd * w,   rstd = 1 / sqrt(mean(x^2) + eps)   (per row).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/nn/parameter_store.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class RMSNorm {
 public:
  RMSNorm(ParameterStore<T>& store, const std::string& name, int dim, double eps);

  // x [rows, dim] -> y [rows, dim]; caches rstd per row for backward.
  void forward(const T* x, T* y, int rows);
  // With xhat = x * rstd and g = dy * w (elementwise):
  //   dw += sum_rows dy * xhat,   dx = rstd * (g - xhat * mean(g * xhat))   (dx overwritten).
  // x must be the input of the last forward.
  void backward(const T* x, const T* dy, T* dx, int rows);

  std::size_t weight_id() const { return weight_id_; }

 private:
  ParameterStore<T>* store_;
  std::size_t weight_id_;
  int dim_;
  double eps_;
  util::AlignedVector<T> rstd_;  // [rows] of the last forward
};

extern template class RMSNorm<float>;
extern template class RMSNorm<double>;

}  // namespace expt::nn
