#include "kernels/newton_schulz.hpp"

#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/gemm.hpp"

namespace expt::kernels {

std::size_t newton_schulz_workspace_size(int m, int n) {
  const std::size_t r = static_cast<std::size_t>(m < n ? m : n);
  const std::size_t c = static_cast<std::size_t>(m < n ? n : m);
  return 2 * r * c + 2 * r * r;
}

template <class T>
void newton_schulz(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                   std::span<T> workspace) {
  if (m <= 0 || n <= 0) throw std::invalid_argument("newton_schulz: matrix dimensions must be positive");
  if (workspace.size() < newton_schulz_workspace_size(m, n))
    throw std::invalid_argument("newton_schulz: workspace too small");
  const bool transposed = m > n;
  const int r = transposed ? n : m;
  const int c = transposed ? m : n;
  const std::size_t rc = static_cast<std::size_t>(r) * static_cast<std::size_t>(c);
  T* X = workspace.data();
  T* X_next = X + rc;
  T* A = X_next + rc;
  T* B = A + static_cast<std::size_t>(r) * static_cast<std::size_t>(r);

  // ‖U‖_F in double, so that large matrices do not lose the norm to float rounding.
  double sum_sq = 0.0;
  for (std::size_t k = 0; k < rc; ++k) sum_sq += static_cast<double>(U[k]) * static_cast<double>(U[k]);
  const T inv_norm = static_cast<T>(1.0 / (std::sqrt(sum_sq) + eps));

  // X = U/(‖U‖_F + ε), r x c (Uᵀ when U is tall).
  if (transposed) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j)
        X[static_cast<std::size_t>(j) * c + i] = U[static_cast<std::size_t>(i) * n + j] * inv_norm;
  } else {
    for (std::size_t k = 0; k < rc; ++k) X[k] = U[k] * inv_norm;
  }

  // A and B are symmetric: A = X·Xᵀ and A·A = A·Aᵀ go through syrk (upper triangle, half the flops of
  // gemm) and B·X through symm, which reads B's upper triangle. syrk of A·Aᵀ needs all of A, so the
  // lower triangle is mirrored from the upper one first (r² copies against r³ flops saved).
  const std::size_t rr = static_cast<std::size_t>(r) * static_cast<std::size_t>(r);
  for (const NsCoefficients& s : steps) {
    // A = X·Xᵀ (r x r), upper triangle, then mirrored.
    syrk_upper<T>(r, c, T(1), X, c, T(0), A, r);
    for (int i = 0; i < r; ++i)
      for (int j = 0; j < i; ++j) A[static_cast<std::size_t>(i) * r + j] = A[static_cast<std::size_t>(j) * r + i];
    // B = c·A·Aᵀ + b·A (r x r), upper triangle.
    syrk_upper<T>(r, r, static_cast<T>(s.c), A, r, T(0), B, r);
    const T b = static_cast<T>(s.b);
    for (std::size_t k = 0; k < rr; ++k) B[k] += b * A[k];  // the lower half is never read
    // X' = a·X + B·X (r x c).
    const T a = static_cast<T>(s.a);
    for (std::size_t k = 0; k < rc; ++k) X_next[k] = a * X[k];
    symm_upper_left<T>(r, c, T(1), B, r, X, c, T(1), X_next, c);
    std::swap(X, X_next);
  }

  if (transposed) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) out[static_cast<std::size_t>(i) * n + j] = X[static_cast<std::size_t>(j) * c + i];
  } else {
    for (std::size_t k = 0; k < rc; ++k) out[k] = X[k];
  }
}

template <class T>
void newton_schulz_reference(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out) {
  // Works on the m x n matrix directly (no transpose): with Y = X·Xᵀ·X the polynomial step is
  // X ← a·X + b·(X Xᵀ) X + c·(X Xᵀ)² X, written with explicit loops.
  const std::size_t mn = static_cast<std::size_t>(m) * n;
  double sum_sq = 0.0;
  for (std::size_t k = 0; k < mn; ++k) sum_sq += static_cast<double>(U[k]) * static_cast<double>(U[k]);
  const T inv_norm = static_cast<T>(1.0 / (std::sqrt(sum_sq) + eps));
  std::vector<T> X(mn), A(static_cast<std::size_t>(m) * m), AA(static_cast<std::size_t>(m) * m), next(mn);
  for (std::size_t k = 0; k < mn; ++k) X[k] = U[k] * inv_norm;
  for (const NsCoefficients& s : steps) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) {
        T acc = 0;
        for (int k = 0; k < n; ++k) acc += X[i * n + k] * X[j * n + k];
        A[i * m + j] = acc;
      }
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) {
        T acc = 0;
        for (int k = 0; k < m; ++k) acc += A[i * m + k] * A[k * m + j];
        AA[i * m + j] = static_cast<T>(s.b) * A[i * m + j] + static_cast<T>(s.c) * acc;
      }
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        T acc = 0;
        for (int k = 0; k < m; ++k) acc += AA[i * m + k] * X[k * n + j];
        next[i * n + j] = static_cast<T>(s.a) * X[i * n + j] + acc;
      }
    std::swap(X, next);
  }
  for (std::size_t k = 0; k < mn; ++k) out[k] = X[k];
}

template void newton_schulz<float>(const float*, int, int, std::span<const NsCoefficients>, double, float*,
                                   std::span<float>);
template void newton_schulz<double>(const double*, int, int, std::span<const NsCoefficients>, double, double*,
                                    std::span<double>);
template void newton_schulz_reference<float>(const float*, int, int, std::span<const NsCoefficients>, double, float*);
template void newton_schulz_reference<double>(const double*, int, int, std::span<const NsCoefficients>, double,
                                              double*);

}  // namespace expt::kernels
