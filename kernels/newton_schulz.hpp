// Newton–Schulz orthogonalization (optimizers.md 2.3), the core of Muon.
//
// For U (m x n, row-major) with SVD U = P·diag(σ)·Qᵀ, each iteration with coefficients (a, b, c)
//   A = X·Xᵀ            (r x r)
//   B = b·A + c·A·A     (r x r)
//   X ← a·X + B·X       (r x c)
// maps every singular value x of X to φ(x) = a·x + b·x³ + c·x⁵ and keeps the singular vectors, so
//   NS_k(U) = P·diag(φ_k(…φ_1(σ_i/(‖U‖_F + ε))))·Qᵀ.
// X starts as U/(‖U‖_F + ε); a tall U (m > n) is transposed first so that X is r x c with
// r = min(m, n) ≤ c = max(m, n) and the Gram matrix A is the small one. A zero U gives a zero
// result (ε > 0). A and B are symmetric, so one iteration costs r²c (A, syrk) + r³ (A·A, syrk) +
// 2r²c (B·X, symm) flops instead of 2r²c + 2r³ + 2r²c with general products.
#pragma once

#include <cstddef>
#include <span>

namespace expt::kernels {

// One iteration's polynomial φ(x) = a·x + b·x³ + c·x⁵.
struct NsCoefficients {
  double a = 0.0;
  double b = 0.0;
  double c = 0.0;
};

// Keller Jordan's quintic (3.4445, −4.7750, 2.0315): maximal slope at 0, outputs in ~[0.68, 1.2].
inline constexpr NsCoefficients kKellerJordanNs{3.4445, -4.7750, 2.0315};
// The classic quintic (15/8, −10/8, 3/8): converges to the polar factor P·Qᵀ (slowly near 0).
inline constexpr NsCoefficients kClassicQuinticNs{15.0 / 8.0, -10.0 / 8.0, 3.0 / 8.0};

// Scalars newton_schulz() needs as workspace for an m x n input: X and X' (r x c each), A and B
// (r x r each).
std::size_t newton_schulz_workspace_size(int m, int n);

// out = NS(U) with one iteration per entry of `steps` (in order). U and out are m x n row-major
// and may alias. `workspace` holds at least newton_schulz_workspace_size(m, n) scalars. The
// products go through BLAS syrk/symm; the Frobenius norm is accumulated in double.
// Allocates nothing.
template <class T>
void newton_schulz(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                   std::span<T> workspace);

// Plain-loop reference with the same contract (allocates its own temporaries), in the scalar type
// T, for the tests to hold newton_schulz() equal to.
template <class T>
void newton_schulz_reference(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out);

}  // namespace expt::kernels
