// L2 normalisation of consecutive groups of `dim` features (fla `l2norm`, docs/derivations/norms.md):
//   y = x * rstd,   rstd = 1 / sqrt(sum(x^2) + eps)
// The delta rule needs unit keys (and queries) so that I - beta k k^T keeps its eigenvalues in
// [1 - beta, 1]; eps keeps an all-zero group finite (y = 0, not NaN).
#pragma once

#include <cstddef>

namespace expt::nn {

inline constexpr double kL2NormEps = 1e-6;

// x, y [groups, dim] (y may alias x); rstd [groups] receives 1 / sqrt(||x||^2 + eps).
template <class T>
void l2norm_forward(const T* x, T* y, T* rstd, std::size_t groups, int dim, T eps);

// dx = rstd * (dy - y (y . dy)) per group (dx may alias dy): d/dx of x r(x) with
// r = (||x||^2 + eps)^(-1/2) is r I - r^3 x x^T = r (I - y y^T).
template <class T>
void l2norm_backward(const T* y, const T* rstd, const T* dy, T* dx, std::size_t groups, int dim);

}  // namespace expt::nn
