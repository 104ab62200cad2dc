#include "kernels/newton_schulz.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/reduction.hpp"

namespace expt::kernels {

std::size_t newton_schulz_workspace_size(int m, int n) {
  const std::size_t r = static_cast<std::size_t>(m < n ? m : n);
  const std::size_t c = static_cast<std::size_t>(m < n ? n : m);
  return 2 * r * c + 5 * r * r;
}

double newton_schulz_flops(int m, int n, int steps, NsMethod method) {
  const int r = m > n ? n : m;
  const int c = m > n ? m : n;
  if (method != NsMethod::gram || static_cast<long long>(c) < static_cast<long long>(kGramMinAspect) * r)
    return steps * (syrk_flops(r, c) + syrk_flops(r, r) + gemm_flops(r, c, r));
  // The calls of newton_schulz_gram() with restart period kGramRestartPeriod, in its order.
  auto restarts_at = [](int j) { return j > 0 && j % kGramRestartPeriod == 0; };
  double flops = syrk_flops(r, c);  // the first Gram matrix
  bool q_identity = true;
  for (int j = 0; j < steps; ++j) {
    if (restarts_at(j) && !q_identity) {
      flops += gemm_flops(r, c, r) + syrk_flops(r, c);
      q_identity = true;
    }
    flops += syrk_flops(r, r);                      // Z
    if (!q_identity) flops += gemm_flops(r, r, r);  // Q ← Z·Q
    q_identity = false;
    if (j + 1 < steps && !restarts_at(j + 1)) flops += syrk_flops(r, r) + symm_flops(r, r);  // R ← Z²·R
  }
  if (!q_identity) flops += gemm_flops(r, c, r);  // X = Q·X_0
  return flops;
}

namespace {

void check_arguments(int m, int n, std::size_t workspace_size) {
  if (m <= 0 || n <= 0) throw std::invalid_argument("newton_schulz: matrix dimensions must be positive");
  if (workspace_size < newton_schulz_workspace_size(m, n))
    throw std::invalid_argument("newton_schulz: workspace too small");
}

// Tiles of the blocked transposes below: a 32 x 32 float tile (4 KiB) of source and destination
// stays in L1, so the strided side of a transpose touches each cache line once per tile instead of
// once per element (a 768-wide matrix has rows 3 KiB apart).
constexpr int kTile = 32;

// dst (cols x rows, row stride ldd) = scale · srcᵀ (src rows x cols, row stride lds), by tiles.
template <class T>
void transpose_scaled(const T* src, int rows, int cols, int lds, T scale, T* dst, int ldd) {
  for (int i0 = 0; i0 < rows; i0 += kTile)
    for (int j0 = 0; j0 < cols; j0 += kTile) {
      const int i1 = std::min(rows, i0 + kTile), j1 = std::min(cols, j0 + kTile);
      for (int i = i0; i < i1; ++i)
        for (int j = j0; j < j1; ++j)
          dst[static_cast<std::size_t>(j) * ldd + i] = scale * src[static_cast<std::size_t>(i) * lds + j];
    }
}

// X = U/(‖U‖_F + ε) as an r x c matrix (Uᵀ when U is tall). ‖U‖_F is accumulated in double in
// fixed lanes (kernels/reduction.hpp: vectorised, independent of alignment), so that large
// matrices do not lose the norm to float rounding.
template <class T>
void load_normalised(const T* U, int m, int n, double eps, T* X) {
  const std::size_t mn = static_cast<std::size_t>(m) * static_cast<std::size_t>(n);
  const double sum_sq = sum_squares_fixed_order<double>(U, mn);
  const T inv_norm = static_cast<T>(1.0 / (std::sqrt(sum_sq) + eps));
  if (m > n) {
    transpose_scaled(U, m, n, n, inv_norm, X, m);
  } else {
    for (std::size_t k = 0; k < mn; ++k) X[k] = U[k] * inv_norm;
  }
}

// out (m x n) from the r x c iterate X, transposing back for a tall U.
template <class T>
void store(const T* X, int m, int n, T* out) {
  if (m > n) {
    transpose_scaled(X, n, m, m, T(1), out, n);
  } else {
    const std::size_t mn = static_cast<std::size_t>(m) * static_cast<std::size_t>(n);
    std::copy(X, X + mn, out);
  }
}

// R := (Z + Zᵀ)/2 for the r x r matrix Z (both triangles), by tiles.
template <class T>
void symmetric_part(const T* Z, int r, T* R) {
  for (int i0 = 0; i0 < r; i0 += kTile)
    for (int j0 = 0; j0 <= i0; j0 += kTile) {
      const int i1 = std::min(r, i0 + kTile), j1 = std::min(r, j0 + kTile);
      for (int i = i0; i < i1; ++i)
        for (int k = j0; k < std::min(j1, i + 1); ++k) {
          const std::size_t low = static_cast<std::size_t>(i) * r + k, up = static_cast<std::size_t>(k) * r + i;
          R[up] = R[low] = T(0.5) * (Z[up] + Z[low]);
        }
    }
}

}  // namespace

template <class T>
void newton_schulz_standard(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                            std::span<T> workspace) {
  check_arguments(m, n, workspace.size());
  const int r = m > n ? n : m;
  const int c = m > n ? m : n;
  const std::size_t rc = static_cast<std::size_t>(r) * static_cast<std::size_t>(c);
  const std::size_t rr = static_cast<std::size_t>(r) * static_cast<std::size_t>(r);
  T* X = workspace.data();
  T* X_next = X + rc;
  T* A = X_next + rc;
  T* B = A + rr;
  load_normalised(U, m, n, eps, X);

  // A and B are symmetric: A = X·Xᵀ and A·A = A·Aᵀ go through syrk (upper triangle, half the flops of
  // gemm). syrk of A·Aᵀ needs all of A, so the lower triangle is mirrored from the upper one first
  // (r² copies against r³ flops saved). B·X is a general product of B mirrored the same way
  // (decision 171): a symm costs the same flops, copies all of B into a scratch first on oneDNN
  // (which has none) and runs slower than the general product on OpenBLAS.
  for (const NsCoefficients& s : steps) {
    // A = X·Xᵀ (r x r), upper triangle, then mirrored.
    syrk_upper<T>(r, c, T(1), X, c, T(0), A, r);
    mirror_upper(A, r);
    // B = c·A·Aᵀ + b·A (r x r): c·A·Aᵀ's upper triangle mirrored, then b·A added to both halves
    // (A is exactly symmetric, so B is too).
    syrk_upper<T>(r, r, static_cast<T>(s.c), A, r, T(0), B, r);
    mirror_upper(B, r);
    const T b = static_cast<T>(s.b);
    for (std::size_t k = 0; k < rr; ++k) B[k] += b * A[k];
    // X' = a·X + B·X (r x c).
    const T a = static_cast<T>(s.a);
    for (std::size_t k = 0; k < rc; ++k) X_next[k] = a * X[k];
    gemm<T>(Trans::no, Trans::no, r, c, r, T(1), B, r, X, c, T(1), X_next, c);
    std::swap(X, X_next);
  }
  store(X, m, n, out);
}

template <class T>
void newton_schulz_gram(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                        std::span<T> workspace, int restart_period) {
  check_arguments(m, n, workspace.size());
  const int r = m > n ? n : m;
  const int c = m > n ? m : n;
  const std::size_t rc = static_cast<std::size_t>(r) * static_cast<std::size_t>(c);
  const std::size_t rr = static_cast<std::size_t>(r) * static_cast<std::size_t>(r);
  T* X = workspace.data();  // X_0 of the current Gram run, r x c
  T* X_next = X + rc;
  T* R = X_next + rc;  // R_k = X_k·X_kᵀ, r x r, full (both triangles)
  T* Z = R + rr;       // Z_k = a·I + b·R_k + c·R_k², full
  T* Z2 = Z + rr;      // Z_k², upper triangle
  T* Q = Z2 + rr;      // Q_k with X_k = Q_k·X_0, full
  T* Q_next = Q + rr;  // scratch for Z·Q
  load_normalised(U, m, n, eps, X);

  // Q = I is kept implicit (q_identity) until the first iteration sets Q = Z_0.
  bool q_identity = true;
  auto fresh_gram = [&] {
    syrk_upper<T>(r, c, T(1), X, c, T(0), R, r);
    mirror_upper(R, r);
    q_identity = true;
  };
  fresh_gram();
  const int K = static_cast<int>(steps.size());
  auto restarts_at = [&](int j) { return restart_period > 0 && j > 0 && j % restart_period == 0; };
  for (int j = 0; j < K; ++j) {
    if (restarts_at(j)) {
      if (!q_identity) {  // X_j = Q_j·X_0 (r x c), then a fresh Gram matrix from it
        gemm<T>(Trans::no, Trans::no, r, c, r, T(1), Q, r, X, c, T(0), X_next, c);
        std::swap(X, X_next);
        fresh_gram();
      }
    }
    const NsCoefficients& s = steps[static_cast<std::size_t>(j)];
    // Z = c·R·Rᵀ + b·R + a·I (upper by syrk, then mirrored: the products below read all of it).
    syrk_upper<T>(r, r, static_cast<T>(s.c), R, r, T(0), Z, r);
    const T b = static_cast<T>(s.b);
    for (std::size_t k = 0; k < rr; ++k) Z[k] += b * R[k];
    for (int i = 0; i < r; ++i) Z[static_cast<std::size_t>(i) * r + i] += static_cast<T>(s.a);
    mirror_upper(Z, r);
    // Q ← Z·Q.
    if (q_identity) {
      std::copy(Z, Z + rr, Q);
      q_identity = false;
    } else {
      gemm<T>(Trans::no, Trans::no, r, r, r, T(1), Z, r, Q, r, T(0), Q_next, r);  // Z is full (mirrored)
      std::swap(Q, Q_next);
    }
    // R ← Z²·R (= Z·R·Z), unless nothing reads it: after the last iteration or before a restart.
    if (j + 1 < K && !restarts_at(j + 1)) {
      syrk_upper<T>(r, r, T(1), Z, r, T(0), Z2, r);
      symm_upper_left<T>(r, r, T(1), Z2, r, R, r, T(0), Z, r);
      // Z²·R is symmetric in exact arithmetic; keep R exactly symmetric (syrk reads all of it).
      symmetric_part(Z, r, R);
    }
  }
  if (!q_identity) {  // X_K = Q_K·X_0
    gemm<T>(Trans::no, Trans::no, r, c, r, T(1), Q, r, X, c, T(0), X_next, c);
    std::swap(X, X_next);
  }
  store(X, m, n, out);
}

template <class T>
void newton_schulz(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                   std::span<T> workspace, NsMethod method) {
  const int r = m > n ? n : m;
  const int c = m > n ? m : n;
  if (method == NsMethod::gram && static_cast<long long>(c) >= static_cast<long long>(kGramMinAspect) * r) {
    newton_schulz_gram(U, m, n, steps, eps, out, workspace, kGramRestartPeriod);
  } else {
    newton_schulz_standard(U, m, n, steps, eps, out, workspace);
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
                                   std::span<float>, NsMethod);
template void newton_schulz<double>(const double*, int, int, std::span<const NsCoefficients>, double, double*,
                                    std::span<double>, NsMethod);
template void newton_schulz_standard<float>(const float*, int, int, std::span<const NsCoefficients>, double, float*,
                                            std::span<float>);
template void newton_schulz_standard<double>(const double*, int, int, std::span<const NsCoefficients>, double, double*,
                                             std::span<double>);
template void newton_schulz_gram<float>(const float*, int, int, std::span<const NsCoefficients>, double, float*,
                                        std::span<float>, int);
template void newton_schulz_gram<double>(const double*, int, int, std::span<const NsCoefficients>, double, double*,
                                         std::span<double>, int);
template void newton_schulz_reference<float>(const float*, int, int, std::span<const NsCoefficients>, double, float*);
template void newton_schulz_reference<double>(const double*, int, int, std::span<const NsCoefficients>, double,
                                              double*);

}  // namespace expt::kernels
