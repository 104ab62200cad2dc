#include "core/nn/rmsnorm.hpp"

#include <cmath>

#include "kernels/reduction.hpp"

namespace expt::nn {

template <class T>
RMSNorm<T>::RMSNorm(ParameterStore<T>& store, const std::string& name, int dim, double eps)
    : store_(&store), weight_id_(store.add(name, {dim}, ParamRole::vector)), dim_(dim), eps_(eps) {}

template <class T>
void RMSNorm<T>::forward(const T* x, T* y, int rows) {
  rstd_.resize(static_cast<std::size_t>(rows));
  const T* w = store_->value(weight_id_);
  for (int i = 0; i < rows; ++i) {
    const T* xi = x + static_cast<std::size_t>(i) * dim_;
    T* yi = y + static_cast<std::size_t>(i) * dim_;
    const double sum_sq = kernels::sum_squares_fixed_order<double>(xi, static_cast<std::size_t>(dim_));
    const T rstd = static_cast<T>(1.0 / std::sqrt(sum_sq / dim_ + eps_));
    rstd_[static_cast<std::size_t>(i)] = rstd;
    for (int c = 0; c < dim_; ++c) yi[c] = xi[c] * rstd * w[c];
  }
}

template <class T>
void RMSNorm<T>::backward(const T* x, const T* dy, T* dx, int rows) {
  const T* w = store_->value(weight_id_);
  T* dw = store_->grad(weight_id_);
  for (int i = 0; i < rows; ++i) {
    const T* xi = x + static_cast<std::size_t>(i) * dim_;
    const T* dyi = dy + static_cast<std::size_t>(i) * dim_;
    T* dxi = dx + static_cast<std::size_t>(i) * dim_;
    const T rstd = rstd_[static_cast<std::size_t>(i)];
    // mean(g * xhat) with g = dy * w, xhat = x * rstd; g goes through dx as scratch.
    for (int c = 0; c < dim_; ++c) {
      dw[c] += dyi[c] * (xi[c] * rstd);
      dxi[c] = dyi[c] * w[c];
    }
    const double dot = kernels::dot_fixed_order<double>(dxi, xi, static_cast<std::size_t>(dim_)) * rstd;
    const T mean_dot = static_cast<T>(dot / dim_);
    for (int c = 0; c < dim_; ++c) dxi[c] = rstd * (dxi[c] - xi[c] * rstd * mean_dot);
  }
}

template class RMSNorm<float>;
template class RMSNorm<double>;

}  // namespace expt::nn
