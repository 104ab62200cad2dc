// optimizers/diagnostics.hpp against an exact SVD (Eigen JacobiSVD, double): the power-method σ_1,
// the stable rank, the update RMS and the Frobenius norms on small matrices.
#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "core/util/random.hpp"
#include "optimizers/diagnostics.hpp"

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

// A = P diag(σ) Qᵀ with orthonormal P (m x r), Q (n x r) from QR of Gaussians.
Mat planted(int m, int n, const std::vector<double>& sigma, std::uint64_t seed) {
  const int r = static_cast<int>(sigma.size());
  Mat a(m, r), b(n, r);
  for (int k = 0; k < m * r; ++k) a(k / r, k % r) = expt::rng::normal(seed, expt::rng::Stream::test, 40, 0, k);
  for (int k = 0; k < n * r; ++k) b(k / r, k % r) = expt::rng::normal(seed, expt::rng::Stream::test, 41, 0, k);
  const Mat P = Eigen::HouseholderQR<Mat>(a).householderQ() * Mat::Identity(m, r);
  const Mat Q = Eigen::HouseholderQR<Mat>(b).householderQ() * Mat::Identity(n, r);
  Mat D = Mat::Zero(r, r);
  for (int k = 0; k < r; ++k) D(k, k) = sigma[k];
  return P * D * Q.transpose();
}

}  // namespace

TEST_CASE("diagnostics: power-method spectral norm against the exact SVD", "[optimizers][diagnostics]") {
  std::vector<double> work(64 + 64);
  for (const auto& [m, n] : {std::pair{12, 7}, std::pair{7, 12}, std::pair{16, 16}}) {
    // A gap σ_2/σ_1 = 0.5: after 8 steps the error is ~0.5^16 relative, far below 1e-4.
    const Mat A = planted(m, n, {4.0, 2.0, 1.5, 0.3}, 7);
    const double exact = Eigen::JacobiSVD<Mat>(A).singularValues()(0);
    CHECK(exact == Approx(4.0).epsilon(1e-12));
    const double est = expt::optim::spectral_norm_estimate(A.data(), m, n, expt::optim::kPowerIterations, work.data());
    CHECK(est <= exact * (1 + 1e-12));  // ‖A v‖ with ‖v‖ = 1 never exceeds σ_1
    CHECK(est == Approx(exact).epsilon(1e-4));
  }
  // Random Gaussian 10 x 6 (no planted gap): still a lower bound, within 2 % after 8 steps here.
  Mat G(10, 6);
  for (int k = 0; k < 60; ++k) G(k / 6, k % 6) = expt::rng::normal(9, expt::rng::Stream::test, 42, 0, k);
  const double exact = Eigen::JacobiSVD<Mat>(G).singularValues()(0);
  const double est = expt::optim::spectral_norm_estimate(G.data(), 10, 6, expt::optim::kPowerIterations, work.data());
  CHECK(est <= exact * (1 + 1e-12));
  CHECK(est == Approx(exact).epsilon(0.02));
  CHECK(expt::optim::spectral_norm_estimate(Mat::Zero(3, 4).eval().data(), 3, 4, 8, work.data()) == 0.0);
}

TEST_CASE("diagnostics: update RMS, stable rank and norms of one step", "[optimizers][diagnostics]") {
  const int m = 9, n = 5;
  const Mat U = planted(m, n, {3.0, 1.0, 1.0}, 11);  // stable rank (9 + 1 + 1) / 9
  Mat W(m, n), Gd(m, n);
  for (int k = 0; k < m * n; ++k) {
    W(k / n, k % n) = expt::rng::normal(12, expt::rng::Stream::test, 43, 0, k);
    Gd(k / n, k % n) = expt::rng::normal(12, expt::rng::Stream::test, 44, 0, k);
  }
  std::vector<float> before(m * n), after(m * n), grad(m * n);
  for (int k = 0; k < m * n; ++k) {
    before[k] = static_cast<float>(W(k / n, k % n));
    after[k] = static_cast<float>(W(k / n, k % n) + U(k / n, k % n));
    grad[k] = static_cast<float>(Gd(k / n, k % n));
  }
  // References from the float values actually stored, in double, with an exact SVD.
  Mat Ustored(m, n), Wafter(m, n), Gstored(m, n);
  for (int k = 0; k < m * n; ++k) {
    Ustored(k / n, k % n) = static_cast<double>(after[k]) - before[k];
    Wafter(k / n, k % n) = after[k];
    Gstored(k / n, k % n) = grad[k];
  }
  const auto sv = Eigen::JacobiSVD<Mat>(Ustored).singularValues();
  std::vector<double> work(m * n + m + n);
  const auto d = expt::optim::matrix_diagnostics(before.data(), after.data(), grad.data(), m, n, work.data());
  using namespace expt::optim;
  CHECK(d[update_rms] == Approx(Ustored.norm() / std::sqrt(m * n)).epsilon(1e-12));
  CHECK(d[update_spectral] == Approx(sv(0)).epsilon(1e-4));
  CHECK(d[update_stable_rank] == Approx(sv.squaredNorm() / (sv(0) * sv(0))).epsilon(1e-3));
  CHECK(d[update_stable_rank] == Approx(11.0 / 9.0).epsilon(1e-3));
  CHECK(d[weight_fro] == Approx(Wafter.norm()).epsilon(1e-12));
  CHECK(d[grad_fro] == Approx(Gstored.norm()).epsilon(1e-12));
  // A step that changes nothing: zeros, no NaN.
  const auto z = matrix_diagnostics(before.data(), before.data(), grad.data(), m, n, work.data());
  CHECK(z[update_rms] == 0.0);
  CHECK(z[update_spectral] == 0.0);
  CHECK(z[update_stable_rank] == 0.0);
}
