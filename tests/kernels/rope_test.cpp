// RoPE kernels: apply against the rotate-half formula, backward against central differences and
// as the inverse rotation, and the relative-position property of rotated dot products.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/attention.hpp"
#include "tests/kernels/gradient_check.hpp"

namespace {

struct RopeTables {
  std::vector<double> cos, sin;
};

RopeTables tables(int seq_len, int head_dim, double theta) {
  RopeTables t{std::vector<double>(static_cast<std::size_t>(seq_len) * head_dim / 2),
               std::vector<double>(static_cast<std::size_t>(seq_len) * head_dim / 2)};
  expt::kernels::rope_table(seq_len, head_dim, theta, t.cos.data(), t.sin.data());
  return t;
}

}  // namespace

TEST_CASE("rope_apply equals the rotate-half formula", "[rope]") {
  const int B = 2, L = 6, H = 3, D = 8;
  for (const double theta : {10000.0, 37.0}) {
    INFO("theta " << theta);
    const auto t = tables(L, D, theta);
    const auto x = expt::test::random_normal(static_cast<std::size_t>(B) * L * H * D, 41);
    auto y = x;
    expt::kernels::rope_apply(t.cos.data(), t.sin.data(), y.data(), B, L, H, D);
    for (int b = 0; b < B; ++b)
      for (int p = 0; p < L; ++p)
        for (int h = 0; h < H; ++h) {
          const std::size_t base = ((static_cast<std::size_t>(b) * L + p) * H + h) * D;
          for (int i = 0; i < D / 2; ++i) {
            const double angle = p * std::pow(theta, -2.0 * i / D);
            const double x1 = x[base + i], x2 = x[base + i + D / 2];
            REQUIRE(std::abs(y[base + i] - (x1 * std::cos(angle) - x2 * std::sin(angle))) < 1e-13);
            REQUIRE(std::abs(y[base + i + D / 2] - (x2 * std::cos(angle) + x1 * std::sin(angle))) < 1e-13);
          }
        }
  }
}

TEST_CASE("rope: position 0 is the identity and backward inverts apply", "[rope]") {
  const int B = 1, L = 5, H = 2, D = 6;
  const auto t = tables(L, D, 10000.0);
  const auto x = expt::test::random_normal(static_cast<std::size_t>(B) * L * H * D, 42);
  auto y = x;
  expt::kernels::rope_apply(t.cos.data(), t.sin.data(), y.data(), B, L, H, D);
  for (int c = 0; c < H * D; ++c) REQUIRE(y[c] == x[c]);
  expt::kernels::rope_backward(t.cos.data(), t.sin.data(), y.data(), B, L, H, D);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(std::abs(y[i] - x[i]) < 1e-14);
}

TEST_CASE("rope: rotated q_m . k_n depends only on m - n", "[rope]") {
  const int L = 9, D = 8;
  const auto t = tables(L, D, 10000.0);
  const auto q = expt::test::random_normal(D, 43), k = expt::test::random_normal(D, 44);
  // Place the same q (and k) at every position, rotate, compare dot products along diagonals.
  std::vector<double> qs(static_cast<std::size_t>(L) * D), ks(qs.size());
  for (int p = 0; p < L; ++p)
    for (int c = 0; c < D; ++c) {
      qs[static_cast<std::size_t>(p) * D + c] = q[c];
      ks[static_cast<std::size_t>(p) * D + c] = k[c];
    }
  expt::kernels::rope_apply(t.cos.data(), t.sin.data(), qs.data(), 1, L, 1, D);
  expt::kernels::rope_apply(t.cos.data(), t.sin.data(), ks.data(), 1, L, 1, D);
  auto score = [&](int m, int n) {
    return expt::test::dot(qs.data() + static_cast<std::size_t>(m) * D, ks.data() + static_cast<std::size_t>(n) * D, D);
  };
  for (int delta = -3; delta <= 3; ++delta)
    for (int m = 3; m < L - 3; ++m) REQUIRE(std::abs(score(m, m - delta) - score(3, 3 - delta)) < 1e-12);
  REQUIRE(std::abs(score(4, 1) - score(4, 2)) > 1e-6);  // and it does depend on the offset
}

TEST_CASE("rope_backward matches central differences", "[rope][gradcheck]") {
  const int B = 2, L = 4, H = 2, D = 4;
  const auto t = tables(L, D, 10000.0);
  auto x = expt::test::random_normal(static_cast<std::size_t>(B) * L * H * D, 45);
  const auto r = expt::test::random_normal(x.size(), 46);
  std::vector<double> y(x.size());
  auto loss = [&] {
    y = x;
    expt::kernels::rope_apply(t.cos.data(), t.sin.data(), y.data(), B, L, H, D);
    return expt::test::dot(y.data(), r.data(), y.size());
  };
  auto dx = r;
  expt::kernels::rope_backward(t.cos.data(), t.sin.data(), dx.data(), B, L, H, D);
  REQUIRE(expt::test::relative_error(expt::test::central_difference(x.data(), x.size(), loss), dx) < 1e-6);
}
