// SwiGLU elementwise core: the vectorised forward and backward equal the plain std::exp loops
// (including a partial last block and saturated inputs), and the backward equals central
// differences of the forward.
#include "kernels/swiglu.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace k = expt::kernels;

namespace {

template <class T>
std::vector<T> random_values(std::size_t n, unsigned seed, double scale) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(gen));
  return v;
}

template <class T>
void check_fast_equals_reference(double tol) {
  const std::size_t n = 3 * k::kSwigluBlock + 37;  // several blocks and a partial one
  auto a = random_values<T>(n, 1, 4.0);
  a[0] = T(-100);  // exp(-a) overflows: SiLU(a) must be -0, not NaN
  a[1] = T(100);
  a[2] = T(0);
  const auto u = random_values<T>(n, 2, 1.0), dh = random_values<T>(n, 3, 1.0);
  std::vector<T> h(n), h_ref(n), da(n), da_ref(n), du(n), du_ref(n);
  k::swiglu_forward(a.data(), u.data(), h.data(), n);
  k::swiglu_forward_reference(a.data(), u.data(), h_ref.data(), n);
  k::swiglu_backward(a.data(), u.data(), dh.data(), da.data(), du.data(), n);
  k::swiglu_backward_reference(a.data(), u.data(), dh.data(), da_ref.data(), du_ref.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    INFO("element " << i << " a " << a[i]);
    REQUIRE(std::isfinite(h[i]));
    REQUIRE(std::isfinite(da[i]));
    REQUIRE(std::abs(h[i] - h_ref[i]) <= tol * (1 + std::abs(h_ref[i])));
    REQUIRE(std::abs(da[i] - da_ref[i]) <= tol * (1 + std::abs(da_ref[i])));
    REQUIRE(std::abs(du[i] - du_ref[i]) <= tol * (1 + std::abs(du_ref[i])));
  }
}

}  // namespace

TEST_CASE("swiglu vectorised equals the reference loops in fp64", "[swiglu]") {
  check_fast_equals_reference<double>(1e-14);
}

TEST_CASE("swiglu vectorised equals the reference loops in fp32", "[swiglu]") {
  check_fast_equals_reference<float>(1e-6);
}

TEST_CASE("swiglu backward equals central differences of the forward", "[swiglu]") {
  const std::size_t n = 300;
  const auto a = random_values<double>(n, 4, 3.0), u = random_values<double>(n, 5, 1.0);
  const auto dh = random_values<double>(n, 6, 1.0);
  std::vector<double> da(n), du(n);
  k::swiglu_backward(a.data(), u.data(), dh.data(), da.data(), du.data(), n);
  const double eps = 1e-6;
  for (std::size_t i = 0; i < n; ++i) {
    double hp, hm;
    const double ap = a[i] + eps, am = a[i] - eps, up = u[i] + eps, um = u[i] - eps;
    k::swiglu_forward_reference(&ap, &u[i], &hp, 1);
    k::swiglu_forward_reference(&am, &u[i], &hm, 1);
    REQUIRE(std::abs(da[i] - dh[i] * (hp - hm) / (2 * eps)) <= 1e-7 * (1 + std::abs(da[i])));
    k::swiglu_forward_reference(&a[i], &up, &hp, 1);
    k::swiglu_forward_reference(&a[i], &um, &hm, 1);
    REQUIRE(std::abs(du[i] - dh[i] * (hp - hm) / (2 * eps)) <= 1e-7 * (1 + std::abs(du[i])));
  }
}
