#include "core/nn/rmsnorm.hpp"

#include <cmath>

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
    double sum_sq = 0;
    for (int c = 0; c < dim_; ++c) sum_sq += static_cast<double>(xi[c]) * static_cast<double>(xi[c]);
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
    // mean(g * xhat) with g = dy * w, xhat = x * rstd
    double dot = 0;
    for (int c = 0; c < dim_; ++c) {
      const T xhat = xi[c] * rstd;
      dw[c] += dyi[c] * xhat;
      dot += static_cast<double>(dyi[c] * w[c]) * static_cast<double>(xhat);
    }
    const T mean_dot = static_cast<T>(dot / dim_);
    for (int c = 0; c < dim_; ++c) dxi[c] = rstd * (dyi[c] * w[c] - xi[c] * rstd * mean_dot);
  }
}

template class RMSNorm<float>;
template class RMSNorm<double>;

}  // namespace expt::nn
