// Newton–Schulz orthogonalization (docs/derivations/newton_schulz.md), the core of Muon.
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
// 2r²c (B·X, a general product of B mirrored) flops instead of 2r²c + 2r³ + 2r²c with general
// products only.
//
// Gram form (Dao lab 2026, "Gram Newton-Schulz"): every iterate is X_k = Q_k·X_0 with Q_k (r x r)
// a polynomial in G = X_0·X_0ᵀ, so the iteration can run on r x r matrices only. With
// R_k = X_k·X_kᵀ and Z_k = a·I + b·R_k + c·R_k² (symmetric, commutes with R_k):
//   Q_{k+1} = Z_k·Q_k,   R_{k+1} = Z_k·R_k·Z_k = Z_k²·R_k,   and at the end X_K = Q_K·X_0.
// Per middle iteration: R² (syrk, r³) + Z² (syrk, r³) + Z²·R (symm, 2r³) + Z·Q (gemm, 2r³) = 6r³,
// against 3r²c + r³ for the standard form; G and the final Q·X_0 add r²c + 2r²c once. The first
// iteration needs no Z·Q (Q_1 = Z_0) and the last no R update. A restart at iteration j forms
// X_j = Q_j·X_0 explicitly and starts a fresh Gram iteration from it (R = X_j·X_jᵀ, Q = I), which
// bounds how far rounding in R and Q can drift (2r²c + r²c per restart). 5 KJ steps with one
// restart (before iteration 3) cost 6α + 20 (r³ units, c = α·r) against 15α + 5: a win for α > 5/3.
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

// Which form newton_schulz() runs: `gram` takes the Gram form where it saves flops (c >= 2r, see
// kGramMinAspect) and the standard form otherwise; `standard` always runs the standard form.
enum class NsMethod { gram, standard };

// The Gram form is chosen when c >= kGramMinAspect·r: below that its flop saving (break-even at
// c/r = 5/3 for 5 steps, one restart) is eaten by the less efficient r x r BLAS calls. Measured
// (float, one thread, r = 256): Gram/standard time 0.82 at c = 3r, 0.97 at 2r, 1.12 at 1.5r, 1.36
// square.
inline constexpr int kGramMinAspect = 2;

// The Gram form restarts (X formed explicitly, fresh Gram matrix) before every iteration j > 0 with
// j % kGramRestartPeriod == 0: with 5 KJ steps one restart, before iteration 3. Chosen by float
// accuracy against a double reference (tests/kernels/newton_schulz_test.cpp): with singular values
// spread over 1e-6..1 or rank-deficient inputs, no restart is 15-50x less accurate than the
// standard form, a restart before iteration 2 (the authors' choice for bf16/fp16) 2-3x, before 3
// 0.9-1.5x at the same cost (every 2 iterations: 1.0-1.2x, but one more restart, +3r²c).
inline constexpr int kGramRestartPeriod = 3;

// Floating-point operations of the BLAS calls newton_schulz(U, m, n, steps, ..., method) makes, with
// `steps` iterations, by kernels/gemm.hpp's conventions (gemm 2MNK, syrk n(n+1)k, symm 2m²n). The
// elementwise work (normalisation, B += b·A, mirroring) is not counted. Muon's shard cost model.
double newton_schulz_flops(int m, int n, int steps, NsMethod method);

// Scalars newton_schulz() needs as workspace for an m x n input, either method: X and X'
// (r x c each) and five r x r matrices (the standard form uses two of them).
std::size_t newton_schulz_workspace_size(int m, int n);

// out = NS(U) with one iteration per entry of `steps` (in order). U and out are m x n row-major
// and may alias. `workspace` holds at least newton_schulz_workspace_size(m, n) scalars. The
// products go through BLAS syrk, symm and gemm; the Frobenius norm is accumulated in double.
// Allocates nothing.
template <class T>
void newton_schulz(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                   std::span<T> workspace, NsMethod method = NsMethod::gram);

// The two forms alone, whatever the shape (same contract as newton_schulz()). The Gram form
// restarts before every iteration j > 0 that `restart_period` divides (0: never); the dispatcher
// passes kGramRestartPeriod.
template <class T>
void newton_schulz_standard(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                            std::span<T> workspace);
template <class T>
void newton_schulz_gram(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out,
                        std::span<T> workspace, int restart_period);

// Plain-loop reference with the same contract (allocates its own temporaries), in the scalar type
// T, for the tests to hold newton_schulz() equal to.
template <class T>
void newton_schulz_reference(const T* U, int m, int n, std::span<const NsCoefficients> steps, double eps, T* out);

}  // namespace expt::kernels
