#include "core/nn/l2norm.hpp"

#include <cmath>

#include "kernels/reduction.hpp"

namespace expt::nn {

template <class T>
void l2norm_forward(const T* x, T* y, T* rstd, std::size_t groups, int dim, T eps) {
  for (std::size_t g = 0; g < groups; ++g) {
    const T* xg = x + g * dim;
    T* yg = y + g * dim;
    const T sum_sq = kernels::sum_squares_fixed_order<T>(xg, static_cast<std::size_t>(dim));
    const T r = T(1) / std::sqrt(sum_sq + eps);
    for (int i = 0; i < dim; ++i) yg[i] = xg[i] * r;
    rstd[g] = r;
  }
}

template <class T>
void l2norm_backward(const T* y, const T* rstd, const T* dy, T* dx, std::size_t groups, int dim) {
  for (std::size_t g = 0; g < groups; ++g) {
    const T* yg = y + g * dim;
    const T* dyg = dy + g * dim;
    T* dxg = dx + g * dim;
    const T y_dot_dy = kernels::dot_fixed_order<T>(yg, dyg, static_cast<std::size_t>(dim));
    for (int i = 0; i < dim; ++i) dxg[i] = rstd[g] * (dyg[i] - yg[i] * y_dot_dy);
  }
}

template void l2norm_forward<float>(const float*, float*, float*, std::size_t, int, float);
template void l2norm_forward<double>(const double*, double*, double*, std::size_t, int, double);
template void l2norm_backward<float>(const float*, const float*, const float*, float*, std::size_t, int);
template void l2norm_backward<double>(const double*, const double*, const double*, double*, std::size_t, int);

}  // namespace expt::nn
