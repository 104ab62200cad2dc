// cross_entropy against the direct formula -log(exp(l_t) / sum_j exp(l_j)), with ignored rows,
// its gradient against central differences, and fp32 robustness with large logits.
#include "core/nn/cross_entropy.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "tests/nn/nn_test_util.hpp"

namespace test = expt::test;

TEST_CASE("cross_entropy equals the direct formula, ignored rows skipped", "[nn][cross_entropy]") {
  const int N = 7, V = 5;
  const auto logits = test::random_normal(static_cast<std::size_t>(N) * V, 31, 2.0);
  const std::vector<std::int32_t> targets = {2, -1, 0, 4, -1, 1, 3};
  const double scale = 0.25;
  std::vector<double> dlogits(logits.size(), 99.0);
  std::vector<std::uint8_t> correct(N, 7);
  const auto stats =
      expt::nn::cross_entropy(logits.data(), targets.data(), N, V, -1, dlogits.data(), scale, correct.data());
  double loss = 0;
  std::int64_t count = 0, n_correct = 0;
  for (int i = 0; i < N; ++i) {
    const double* row = logits.data() + i * V;
    if (targets[i] == -1) {
      REQUIRE(correct[i] == 1);
      for (int j = 0; j < V; ++j) REQUIRE(dlogits[i * V + j] == 0.0);
      continue;
    }
    double denom = 0;
    int best = 0;
    for (int j = 0; j < V; ++j) {
      denom += std::exp(row[j]);
      if (row[j] > row[best]) best = j;
    }
    loss += -std::log(std::exp(row[targets[i]]) / denom);
    ++count;
    n_correct += best == targets[i];
    REQUIRE(correct[i] == (best == targets[i] ? 1 : 0));
    for (int j = 0; j < V; ++j)
      REQUIRE(std::abs(dlogits[i * V + j] - scale * (std::exp(row[j]) / denom - (j == targets[i]))) < 1e-15);
  }
  REQUIRE(stats.count == count);
  REQUIRE(stats.correct == n_correct);
  REQUIRE(std::abs(stats.loss_sum - loss) < 1e-12);

  // Without the optional outputs the statistics are the same.
  const auto bare = expt::nn::cross_entropy<double>(logits.data(), targets.data(), N, V, -1, nullptr, 1.0, nullptr);
  REQUIRE(bare.loss_sum == stats.loss_sum);
  REQUIRE(bare.correct == stats.correct);
}

TEST_CASE("cross_entropy gradient matches central differences", "[nn][cross_entropy][gradcheck]") {
  const int N = 4, V = 6;
  auto logits = test::random_normal(static_cast<std::size_t>(N) * V, 32);
  const std::vector<std::int32_t> targets = {5, 0, -1, 2};
  const double scale = 1.0 / 3.0;
  auto loss = [&] {
    return scale *
           expt::nn::cross_entropy<double>(logits.data(), targets.data(), N, V, -1, nullptr, 1.0, nullptr).loss_sum;
  };
  std::vector<double> dlogits(logits.size());
  expt::nn::cross_entropy(logits.data(), targets.data(), N, V, -1, dlogits.data(), scale,
                          static_cast<std::uint8_t*>(nullptr));
  REQUIRE(test::relative_error(test::central_difference(logits.data(), logits.size(), loss), dlogits) < 1e-6);
}

TEST_CASE("cross_entropy in float is finite for large logits", "[nn][cross_entropy]") {
  // Row (1000, 1001, 999), target 0: loss = log(e^0 + e^1 + e^-1) (logits relative to the target);
  // row (-1000, -1001, -999), target 2: loss = log(e^-1 + e^-2 + e^0). exp(1000) itself overflows.
  const std::vector<float> logits = {1000.f, 1001.f, 999.f, -1000.f, -1001.f, -999.f};
  const std::vector<std::int32_t> targets = {0, 2};
  std::vector<float> dlogits(6);
  std::vector<std::uint8_t> correct(2);
  const auto stats =
      expt::nn::cross_entropy(logits.data(), targets.data(), 2, 3, -1, dlogits.data(), 1.0f, correct.data());
  const double expected = std::log(1 + std::exp(1.0) + std::exp(-1.0)) + std::log(std::exp(-1.0) + std::exp(-2.0) + 1);
  REQUIRE(stats.loss_sum == Approx(expected).epsilon(1e-6));
  REQUIRE(stats.correct == 1);
  REQUIRE(correct[0] == 0);
  REQUIRE(correct[1] == 1);
  for (float g : dlogits) REQUIRE(std::isfinite(g));
  REQUIRE(dlogits[1] == Approx(std::exp(1.0) / (1 + std::exp(1.0) + std::exp(-1.0))).epsilon(1e-6));

  const std::vector<std::int32_t> bad = {3, 0};
  REQUIRE_THROWS_AS(expt::nn::cross_entropy(logits.data(), bad.data(), 2, 3, -1, dlogits.data(), 1.0f, correct.data()),
                    std::out_of_range);
}
