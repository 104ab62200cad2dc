#include "core/nn/l2norm.hpp"

#include <cmath>

namespace expt::nn {

template <class T>
void l2norm_forward(const T* x, T* y, T* rstd, std::size_t groups, int dim, T eps) {
  for (std::size_t g = 0; g < groups; ++g) {
    const T* xg = x + g * dim;
    T* yg = y + g * dim;
    T sum_sq = 0;
    for (int i = 0; i < dim; ++i) sum_sq += xg[i] * xg[i];
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
    T y_dot_dy = 0;
    for (int i = 0; i < dim; ++i) y_dot_dy += yg[i] * dyg[i];
    for (int i = 0; i < dim; ++i) dxg[i] = rstd[g] * (dyg[i] - yg[i] * y_dot_dy);
  }
}

template void l2norm_forward<float>(const float*, float*, float*, std::size_t, int, float);
template void l2norm_forward<double>(const double*, double*, double*, std::size_t, int, double);
template void l2norm_backward<float>(const float*, const float*, const float*, float*, std::size_t, int);
template void l2norm_backward<double>(const double*, const double*, const double*, double*, std::size_t, int);

}  // namespace expt::nn
