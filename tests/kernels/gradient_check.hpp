// Test helpers shared by tests/kernels and tests/nn: deterministic random vectors, central
// differences and a norm-wise relative error.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace expt::test {

// n values of scale * N(0, 1) from a fixed seed.
template <class T = double>
std::vector<T> random_normal(std::size_t n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<T> out(n);
  for (auto& v : out) v = static_cast<T>(dist(gen));
  return out;
}

// d loss / d x_i by central differences (loss(x + eps e_i) - loss(x - eps e_i)) / (2 eps), for every
// element of x[0, n); x is perturbed in place and restored exactly.
template <class Loss>
std::vector<double> central_difference(double* x, std::size_t n, Loss&& loss, double eps = 1e-5) {
  std::vector<double> grad(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double saved = x[i];
    x[i] = saved + eps;
    const double up = loss();
    x[i] = saved - eps;
    const double down = loss();
    x[i] = saved;
    grad[i] = (up - down) / (2 * eps);
  }
  return grad;
}

// ||a - b||_2 / max(||a||_2, ||b||_2); 0 when both are zero.
inline double relative_error(const double* a, const double* b, std::size_t n) {
  double diff = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  const double denom = std::sqrt(std::max(na, nb));
  return denom == 0 ? 0.0 : std::sqrt(diff) / denom;
}

inline double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() != b.size() ? INFINITY : relative_error(a.data(), b.data(), a.size());
}

// sum_i a_i b_i
template <class T>
double dot(const T* a, const T* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

}  // namespace expt::test
