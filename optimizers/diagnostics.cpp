#include "optimizers/diagnostics.hpp"

#include <cmath>

namespace expt::optim {

double spectral_norm_estimate(const double* A, int m, int n, int iterations, double* work) {
  double* v = work;      // n
  double* u = work + n;  // m
  // Fixed start: v_j = 1 + j/n (positive and not symmetric, so it is not orthogonal to the top
  // right singular vector of the matrices we meet except by accident).
  double norm = 0.0;
  for (int j = 0; j < n; ++j) {
    v[j] = 1.0 + static_cast<double>(j) / n;
    norm += v[j] * v[j];
  }
  norm = std::sqrt(norm);
  for (int j = 0; j < n; ++j) v[j] /= norm;
  double sigma = 0.0;
  for (int it = 0; it <= iterations; ++it) {
    // u = A v; σ ≈ ‖u‖ (v has unit norm).
    double u2 = 0.0;
    for (int i = 0; i < m; ++i) {
      const double* row = A + static_cast<std::size_t>(i) * n;
      double acc = 0.0;
      for (int j = 0; j < n; ++j) acc += row[j] * v[j];
      u[i] = acc;
      u2 += acc * acc;
    }
    sigma = std::sqrt(u2);
    if (it == iterations || sigma == 0.0) break;
    // v = Aᵀ u / ‖Aᵀ u‖.
    for (int j = 0; j < n; ++j) v[j] = 0.0;
    for (int i = 0; i < m; ++i) {
      const double* row = A + static_cast<std::size_t>(i) * n;
      for (int j = 0; j < n; ++j) v[j] += row[j] * u[i];
    }
    double v2 = 0.0;
    for (int j = 0; j < n; ++j) v2 += v[j] * v[j];
    const double inv = 1.0 / std::sqrt(v2);
    for (int j = 0; j < n; ++j) v[j] *= inv;
  }
  return sigma;
}

std::array<double, kDiagnosticFields> matrix_diagnostics(const float* before, const float* after, const float* grad,
                                                         int m, int n, double* work) {
  const std::size_t size = static_cast<std::size_t>(m) * n;
  double* U = work;
  double u2 = 0.0, w2 = 0.0, g2 = 0.0;
  for (std::size_t k = 0; k < size; ++k) {
    U[k] = static_cast<double>(after[k]) - static_cast<double>(before[k]);
    u2 += U[k] * U[k];
    w2 += static_cast<double>(after[k]) * after[k];
    g2 += static_cast<double>(grad[k]) * grad[k];
  }
  std::array<double, kDiagnosticFields> out{};
  out[update_rms] = std::sqrt(u2 / static_cast<double>(size));
  out[update_spectral] = spectral_norm_estimate(U, m, n, kPowerIterations, work + size);
  out[update_stable_rank] = out[update_spectral] > 0.0 ? u2 / (out[update_spectral] * out[update_spectral]) : 0.0;
  out[weight_fro] = std::sqrt(w2);
  out[grad_fro] = std::sqrt(g2);
  return out;
}

}  // namespace expt::optim
