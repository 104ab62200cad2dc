#include "kernels/swiglu.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace expt::kernels {

namespace {
template <class T>
using Block = Eigen::Array<T, Eigen::Dynamic, 1, 0, kSwigluBlock, 1>;  // fixed capacity, on the stack
template <class T>
using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
}  // namespace

template <class T>
void swiglu_forward(const T* a, const T* u, T* h, std::size_t n) {
  for (std::size_t i0 = 0; i0 < n; i0 += kSwigluBlock) {
    const Eigen::Index m = static_cast<Eigen::Index>(std::min(kSwigluBlock, n - i0));
    const ConstVec<T> av(a + i0, m), uv(u + i0, m);
    // a sigmoid(a) = a / (1 + exp(-a)); exp(-a) = inf for very negative a gives 0, as it should.
    Vec<T>(h + i0, m) = av * uv / (T(1) + (-av).exp());
  }
}

template <class T>
void swiglu_backward(const T* a, const T* u, const T* dh, T* da, T* du, std::size_t n) {
  Block<T> sig;
  for (std::size_t i0 = 0; i0 < n; i0 += kSwigluBlock) {
    const Eigen::Index m = static_cast<Eigen::Index>(std::min(kSwigluBlock, n - i0));
    const ConstVec<T> av(a + i0, m), uv(u + i0, m), dhv(dh + i0, m);
    sig = (T(1) + (-av).exp()).inverse();
    Vec<T>(da + i0, m) = dhv * uv * sig * (T(1) + av * (T(1) - sig));
    Vec<T>(du + i0, m) = dhv * av * sig;
  }
}

template <class T>
void swiglu_forward_reference(const T* a, const T* u, T* h, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) h[i] = a[i] / (T(1) + std::exp(-a[i])) * u[i];
}

template <class T>
void swiglu_backward_reference(const T* a, const T* u, const T* dh, T* da, T* du, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const T sig = T(1) / (T(1) + std::exp(-a[i]));
    da[i] = dh[i] * u[i] * sig * (T(1) + a[i] * (T(1) - sig));
    du[i] = dh[i] * a[i] * sig;
  }
}

#define EXPT_INSTANTIATE_SWIGLU(T)                                                     \
  template void swiglu_forward<T>(const T*, const T*, T*, std::size_t);                \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, std::size_t); \
  template void swiglu_forward_reference<T>(const T*, const T*, T*, std::size_t);      \
  template void swiglu_backward_reference<T>(const T*, const T*, const T*, T*, T*, std::size_t);

EXPT_INSTANTIATE_SWIGLU(float)
EXPT_INSTANTIATE_SWIGLU(double)

#undef EXPT_INSTANTIATE_SWIGLU

}  // namespace expt::kernels
