// Global-norm clipping against norms computed here in double.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "core/util/random.hpp"
#include "optimizers/clip.hpp"

using expt::optim::clip_grad_norm;
using expt::optim::squared_norm;

namespace {

std::vector<float> random_grads(std::size_t n, std::uint64_t which, double scale) {
  std::vector<float> g(n);
  for (std::size_t k = 0; k < n; ++k)
    g[k] = static_cast<float>(scale * expt::rng::normal(5, expt::rng::Stream::test, which, 0, k));
  return g;
}

double norm_of(const std::vector<std::vector<float>>& buffers) {
  double s = 0.0;
  for (const auto& b : buffers)
    for (float x : b) s += double(x) * double(x);
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("clip: one flat buffer", "[clip]") {
  CHECK(squared_norm(std::vector<float>{3.0f, 4.0f}) == 25.0);
  SECTION("above the threshold: scaled to norm c, direction kept") {
    auto g = random_grads(1000, 1, 1.0);
    const auto original = g;
    const double expected_norm = norm_of({g});
    const double returned = clip_grad_norm(std::span<float>(g), 2.0);
    CHECK(returned == Approx(expected_norm).epsilon(1e-12));
    CHECK(norm_of({g}) == Approx(2.0).epsilon(1e-6));
    for (std::size_t k = 0; k < g.size(); ++k) CHECK(g[k] == Approx(original[k] * 2.0 / expected_norm).epsilon(1e-6));
  }
  SECTION("below the threshold or disabled: unchanged") {
    auto g = random_grads(100, 2, 0.01);
    const auto original = g;
    const double n = norm_of({g});
    CHECK(clip_grad_norm(std::span<float>(g), 1.0) == Approx(n).epsilon(1e-12));
    CHECK(g == original);
    auto big = random_grads(100, 3, 10.0);
    const auto big_original = big;
    CHECK(clip_grad_norm(std::span<float>(big), 0.0) == Approx(norm_of({big})).epsilon(1e-12));
    CHECK(big == big_original);
  }
  SECTION("zero gradient") {
    std::vector<float> g(10, 0.0f);
    CHECK(clip_grad_norm(std::span<float>(g), 1.0) == 0.0);
    for (float x : g) CHECK(x == 0.0f);
  }
  SECTION("non-finite norm leaves gradients for the caller to detect") {
    std::vector<float> g{1.0f, std::numeric_limits<float>::infinity(), 2.0f};
    CHECK(std::isinf(clip_grad_norm(std::span<float>(g), 1.0)));
    CHECK(g[0] == 1.0f);
    CHECK(g[2] == 2.0f);
  }
}

TEST_CASE("clip: several buffers share one global norm", "[clip]") {
  std::vector<std::vector<float>> buffers = {random_grads(7, 4, 1.0), random_grads(50, 5, 3.0),
                                             random_grads(3, 6, 0.1)};
  const auto original = buffers;
  const double n = norm_of(buffers);
  std::vector<std::span<float>> spans(buffers.begin(), buffers.end());
  CHECK(clip_grad_norm(spans, 1.5) == Approx(n).epsilon(1e-12));
  CHECK(norm_of(buffers) == Approx(1.5).epsilon(1e-6));
  for (std::size_t b = 0; b < buffers.size(); ++b)
    for (std::size_t k = 0; k < buffers[b].size(); ++k)
      CHECK(buffers[b][k] == Approx(original[b][k] * 1.5 / n).epsilon(1e-6));
}
