// SwiGLU elementwise core (layers.md 3.2) on flat arrays of n elements, a = x W_gate, u = x W_up:
//   forward   h  = SiLU(a) u = a sigmoid(a) u
//   backward  da = dh u sigmoid(a) (1 + a (1 - sigmoid(a))),   du = dh SiLU(a)
// swiglu_forward/backward evaluate sigmoid once per element with Eigen's vectorised exp, in blocks
// of kSwigluBlock elements (no allocation); the *_reference twins are the plain loops with std::exp
// that tests/kernels/swiglu_test.cpp holds them equal to.
#pragma once

#include <cstddef>

namespace expt::kernels {

inline constexpr std::size_t kSwigluBlock = 256;

template <class T>
void swiglu_forward(const T* a, const T* u, T* h, std::size_t n);
template <class T>
void swiglu_backward(const T* a, const T* u, const T* dh, T* da, T* du, std::size_t n);

template <class T>
void swiglu_forward_reference(const T* a, const T* u, T* h, std::size_t n);
template <class T>
void swiglu_backward_reference(const T* a, const T* u, const T* dh, T* da, T* du, std::size_t n);

}  // namespace expt::kernels
