// Per-matrix optimizer diagnostics (train.diagnostics_every, docs/results-format.md "Optimizer
// diagnostics"). For one parameter W (m x n as stored, a vector is 1 x n) with gradient G and the
// update U = W_after − W_before of one step:
//
//   update_rms       ‖U‖_F / sqrt(m·n)
//   update_spectral  σ_1(U) estimated by kPowerIterations steps of the power method on UᵀU from a
//                    fixed start vector: v ← UᵀU v / ‖UᵀU v‖, estimate ‖U v‖ (a lower bound of σ_1
//                    that converges like (σ_2/σ_1)^(2k))
//   update_stable_rank  ‖U‖_F² / σ_1(U)², the stable (numerical) rank of Rudelson and Vershynin
//                    ("Sampling from large matrices", J. ACM 54(4), 2007), with the estimated σ_1
//                    (so an upper bound of the exact stable rank, which lies in [1, min(m, n)]);
//                    0 for U = 0
//   weight_fro       ‖W_after‖_F
//   grad_fro         ‖G‖_F (the gradient the optimizer received: reduced and clipped)
//
// The stable rank is used rather than the entropy effective rank (Roy and Vetterli 2007) because it
// needs only σ_1, which the power method gives in O(k·m·n); the entropy form needs every singular
// value (an SVD, O(m·n·min(m, n))). All sums are in double.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace expt::optim {

inline constexpr int kPowerIterations = 8;

enum DiagnosticField { update_rms, update_spectral, update_stable_rank, weight_fro, grad_fro, kDiagnosticFields };
inline constexpr std::array<std::string_view, kDiagnosticFields> kDiagnosticNames = {
    "update_rms", "update_spectral", "update_stable_rank", "weight_fro", "grad_fro"};

// σ_1 estimate of the m x n row-major matrix A by `iterations` power steps. work: m + n doubles.
double spectral_norm_estimate(const double* A, int m, int n, int iterations, double* work);

// The five fields for one parameter. before/after: W before and after the step; grad: G.
// work: m·n + m + n doubles (U in double, and the power-method vectors).
std::array<double, kDiagnosticFields> matrix_diagnostics(const float* before, const float* after, const float* grad,
                                                         int m, int n, double* work);

}  // namespace expt::optim
