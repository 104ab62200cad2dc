// M-FAC against docs/derivations/mfac.md: the dense oracle (partial window, full, wrap-around), the worked
// example, the empty window, symmetry and positivity, D against a Cholesky-derived LU; the
// incremental Cholesky window against the O(m³) reference and the dense solve (5000 inserts
// too); the optimizer against a dense double reference, blocks, and the reference window's
// trajectory; resume, allocation, least squares. Column sharding: tests/mpi/mfac_shard_test.cpp.
#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "optimizer_test_util.hpp"
#include "optimizers/mfac.hpp"
#include "optimizers/registry.hpp"

using expt::config::optimizer_defaults;
using expt::nn::ParameterStore;
using expt::nn::ParamRole;
using expt::optim::MfacReferenceWindow;
using expt::optim::MfacWindow;
using expt::optim::param_refs;
using Mat = Eigen::MatrixXd;
using Vec = Eigen::VectorXd;

namespace {

Vec gaussian(int n, std::uint64_t a, std::uint64_t b) {
  Vec v(n);
  for (int k = 0; k < n; ++k) v(k) = expt::rng::normal(23, expt::rng::Stream::test, a, b, k);
  return v;
}

// solve(λI + GᵀG/m, x) with G's rows = the given gradients (zero rows for unfilled slots).
Vec dense_ihvp(const std::vector<Vec>& window_rows, int m, double lambda, const Vec& x) {
  const int d = static_cast<int>(x.size());
  Mat F = lambda * Mat::Identity(d, d);
  for (const Vec& g : window_rows) F += g * g.transpose() / m;
  return F.ldlt().solve(x);
}

template <class W>
Vec ihvp(W& w, const Vec& x) {
  Vec y(x.size());
  w.ihvp(x.data(), y.data());
  return y;
}

double relative_error(const Vec& a, const Vec& b) { return (a - b).cwiseAbs().maxCoeff() / b.cwiseAbs().maxCoeff(); }

}  // namespace

TEST_CASE("M-FAC IHVP equals the dense solve for partial, full and wrapped windows", "[optimizers][mfac]") {
  const int m = 4, d = 7;
  const double lambda = 0.1;
  for (int inserted : {0, 2, 3, 4, 7, 3 * m + 1}) {
    MfacWindow<double> w(m, d, lambda);
    MfacReferenceWindow<double> ref(m, d, lambda);
    std::vector<Vec> all;
    for (int k = 0; k < inserted; ++k) {
      all.push_back(gaussian(d, 1, k));
      w.insert(all.back().data());
      ref.insert(all.back().data());
    }
    CHECK(w.count() == std::min(inserted, m));
    // The window holds the last min(inserted, m) gradients; the order does not matter.
    std::vector<Vec> rows(all.end() - std::min(inserted, m), all.end());
    for (int trial = 0; trial < 3; ++trial) {
      const Vec x = gaussian(d, 2, trial);
      const Vec expected = dense_ihvp(rows, m, lambda, x);
      CHECK(relative_error(ihvp(w, x), expected) < 1e-10);
      CHECK(relative_error(ihvp(ref, x), expected) < 1e-10);
      CHECK(relative_error(ihvp(w, x), ihvp(ref, x)) < 1e-10);
    }
    if (inserted == 0) {
      const Vec x = gaussian(d, 3, 0);
      CHECK((ihvp(w, x) - x / lambda).cwiseAbs().maxCoeff() < 1e-12);
    }
    // Symmetry and positivity.
    const Vec x = gaussian(d, 4, 0), y = gaussian(d, 4, 1);
    CHECK(y.dot(ihvp(w, x)) == Approx(x.dot(ihvp(w, y))).epsilon(1e-10));
    CHECK(x.dot(ihvp(w, x)) > 0.0);
  }
}

TEST_CASE("M-FAC fused insert + IHVP equals insert then IHVP, and the factor is chol(eps K + m I)",
          "[optimizers][mfac]") {
  const int m = 5, d = 9;
  const double lambda = 0.05, eps = 1 / lambda;
  MfacWindow<double> fused(m, d, lambda), split(m, d, lambda);
  MfacReferenceWindow<double> ref(m, d, lambda);
  for (int k = 0; k < 2 * m + 3; ++k) {
    const Vec g = gaussian(d, 8, k);
    Vec y_fused(d), y_split(d), y_ref(d);
    fused.insert_and_ihvp(g.data(), y_fused.data());
    split.insert(g.data());
    split.ihvp(g.data(), y_split.data());
    ref.insert_and_ihvp(g.data(), y_ref.data());
    CHECK(relative_error(y_fused, y_split) < 1e-12);
    CHECK(relative_error(y_fused, y_ref) < 1e-10);
  }
  // Rᵀ R = ε·G_c G_cᵀ + m·I with G_c the window's rows in chronological order (oldest first).
  Mat G(m, d);
  for (int j = 0; j < m; ++j)
    for (int c = 0; c < d; ++c) G(j, c) = fused.gradients()[((fused.next_slot() + j) % m) * d + c];
  const Mat A = eps * G * G.transpose() + m * Mat::Identity(m, m);
  const Mat R = Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(fused.factor().data(), m, m)
                    .triangularView<Eigen::Upper>();
  CHECK((R.transpose() * R - A).cwiseAbs().maxCoeff() < 1e-12 * A.cwiseAbs().maxCoeff());
}

TEST_CASE("M-FAC window stays accurate over 5000 inserts", "[optimizers][mfac]") {
  // Drift: the long-running window against a fresh one built from the same last m gradients, and
  // both against the dense solve. Well-conditioned case (λ = 0.1, unit gradients): all within
  // 1e-10. Stress case (λ = 1e-4, gradient scales 1e-3 .. 1e3, so ε·K spans many orders of
  // magnitude): F̂'s own conditioning (~1e11) limits both windows equally against the dense solve
  // (measured 1e-6), while the long window stays within 1e-12 of the fresh one (measured 1e-15).
  for (bool stress : {false, true})
    for (int m : {3, 16}) {
      const int d = 2 * m + 1;
      const double lambda = stress ? 1e-4 : 0.1;
      MfacWindow<double> w(m, d, lambda);
      std::vector<Vec> all;
      double drift = 0.0, dense_long = 0.0, dense_fresh = 0.0;
      for (int k = 0; k < 5000; ++k) {
        all.push_back(gaussian(d, 9, k) * (stress ? std::pow(10.0, (k % 7) - 3) : 1.0));
        w.insert(all.back().data());
        if (k % 499 == 0 || k == 4999) {
          const std::vector<Vec> rows(all.end() - std::min<int>(k + 1, m), all.end());
          MfacWindow<double> fresh(m, d, lambda);
          for (const Vec& g : rows) fresh.insert(g.data());
          const Vec x = gaussian(d, 10, k), y_long = ihvp(w, x), y_fresh = ihvp(fresh, x);
          const Vec y_dense = dense_ihvp(rows, m, lambda, x);
          drift = std::max(drift, relative_error(y_long, y_fresh));
          dense_long = std::max(dense_long, relative_error(y_long, y_dense));
          dense_fresh = std::max(dense_fresh, relative_error(y_fresh, y_dense));
        }
      }
      INFO("stress " << stress << " m " << m << ": long vs fresh " << drift << ", long vs dense " << dense_long
                     << ", fresh vs dense " << dense_fresh);
      CHECK(drift < 1e-12);
      if (stress)
        CHECK(dense_long < 2 * dense_fresh);
      else
        CHECK(dense_long < 1e-10);
    }
}

TEST_CASE("M-FAC worked example of docs/derivations/mfac.md", "[optimizers][mfac]") {
  MfacReferenceWindow<double> w(2, 3, 0.5);
  MfacWindow<double> fast(2, 3, 0.5);
  const double g1[3] = {1, 2, 0}, g2[3] = {0, 1, -1}, x[3] = {1, 0, 1};
  w.insert(g1);
  w.insert(g2);
  fast.insert(g1);
  fast.insert(g2);
  const auto K = w.gram(), D = w.d_factor(), B = w.b_factor(), dv = w.denominators();
  CHECK(K[0] == 5.0);
  CHECK(K[1] == 2.0);
  CHECK(K[3] == 2.0);
  CHECK(D[0] == Approx(10.0));
  CHECK(D[1] == Approx(4.0));
  CHECK(D[3] == Approx(8.0 / 3.0));
  CHECK(dv[0] == Approx(12.0));
  CHECK(dv[1] == Approx(14.0 / 3.0));
  CHECK(B[0] == Approx(2.0));
  CHECK(B[2] == Approx(-2.0 / 3.0));
  CHECK(B[3] == Approx(2.0));
  // The Cholesky factor of A = εK + m·I = [[12, 4], [4, 6]] (both slots filled, g1 the oldest):
  // its squared diagonal is the LU's d = (12, 14/3).
  const auto R = fast.factor();
  CHECK(R[0] * R[0] == Approx(12.0).epsilon(1e-14));
  CHECK(R[1] == Approx(4.0 / std::sqrt(12.0)).epsilon(1e-14));
  CHECK(R[3] * R[3] == Approx(14.0 / 3.0).epsilon(1e-14));
  auto check_y = [&](auto& win) {
    double y[3];
    win.ihvp(x, y);
    CHECK(y[0] == Approx(9.0 / 7.0).epsilon(1e-12));
    CHECK(y[1] == Approx(-2.0 / 7.0).epsilon(1e-12));
    CHECK(y[2] == Approx(6.0 / 7.0).epsilon(1e-12));
  };
  check_y(w);
  check_y(fast);
}

TEST_CASE("M-FAC D is the LU upper factor of eps K + m I minus m I", "[optimizers][mfac]") {
  const int m = 5, d = 9;
  const double lambda = 0.05, eps = 1 / lambda;
  MfacReferenceWindow<double> w(m, d, lambda);
  for (int k = 0; k < 7; ++k) w.insert(gaussian(d, 5, k).data());
  Mat A = eps * Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>>(w.gram().data(), m, m);
  A += m * Mat::Identity(m, m);
  // Doolittle U from the Cholesky factor: A = C Cᵀ, U = diag(C) Cᵀ.
  const Mat C = A.llt().matrixL();
  for (int j = 0; j < m; ++j)
    for (int i = j; i < m; ++i) {
      const double u = C(j, j) * C(i, j) - (i == j ? m : 0.0);
      CHECK(w.d_factor()[j * m + i] == Approx(u).epsilon(1e-10).margin(1e-9));
    }
}

TEST_CASE("M-FAC optimizer follows a dense double reference (momentum, both wd modes, blocks)", "[optimizers][mfac]") {
  for (auto wd_mode : {expt::config::WdMode::coupled_l2, expt::config::WdMode::decoupled_lr_scaled})
    for (int block : {0, 5}) {
      ParameterStore<float> store;
      store.add("w", {3, 3}, ParamRole::matrix);
      store.add("b", {3}, ParamRole::vector);
      store.allocate();
      for (std::size_t k = 0; k < 12; ++k) store.values()[k] = static_cast<float>(gaussian(12, 6, 0)(k));
      auto cfg = optimizer_defaults("mfac");
      cfg.window = 3;
      cfg.damping = 0.5;
      cfg.momentum = 0.5;
      cfg.weight_decay = 0.1;
      cfg.wd_mode = wd_mode;
      cfg.block_size = block;
      expt::optim::MFac opt(cfg, store.params());
      CHECK(opt.block_count() == (block == 0 ? 1u : 3u));
      Vec theta(12), z = Vec::Zero(12);
      for (int k = 0; k < 12; ++k) theta(k) = store.values()[k];
      std::vector<Vec> history;
      const double lr = 0.05;
      auto refs = param_refs(store);
      const bool coupled = wd_mode == expt::config::WdMode::coupled_l2;
      for (int t = 1; t <= 5; ++t) {
        const Vec g = gaussian(12, 7, t);
        for (int k = 0; k < 12; ++k) store.grads()[k] = static_cast<float>(g(k));
        opt.step(refs, t, lr);
        Vec gf(12);
        for (int k = 0; k < 12; ++k) gf(k) = store.grads()[k];
        const Vec ghat = coupled ? Vec(gf + 0.1 * theta) : gf;
        history.push_back(ghat);
        Vec u(12);
        const int bs = block == 0 ? 12 : block;
        for (int s = 0; s < 12; s += bs) {
          const int n = std::min(bs, 12 - s);
          std::vector<Vec> rows;
          for (std::size_t h = history.size() - std::min<std::size_t>(history.size(), 3); h < history.size(); ++h)
            rows.push_back(history[h].segment(s, n));
          u.segment(s, n) = dense_ihvp(rows, 3, 0.5, ghat.segment(s, n));
        }
        z = 0.5 * z + 0.5 * u;
        if (!coupled) theta *= 1 - lr * 0.1;
        theta -= lr * z;
      }
      double diff = 0;
      for (int k = 0; k < 12; ++k) diff = std::max(diff, std::abs(theta(k) - store.values()[k]));
      CHECK(diff < 1e-5);
    }
}

TEST_CASE("M-FAC: resume is bit-exact, step allocates nothing, least squares decreases", "[optimizers][mfac]") {
  auto make = [](const expt::test::LeastSquares& p) {
    auto cfg = optimizer_defaults("mfac");
    cfg.window = 8;
    cfg.damping = 1e-2;
    cfg.momentum = 0.5;
    cfg.weight_decay = 0.001;
    return expt::optim::make_optimizer(cfg, p.store.params());
  };
  CHECK(expt::test::resume_is_bit_exact(make, 10, 5, 0.001));  // wraps the window before the save

  CHECK(expt::test::allocations_after_first_step(make, 2, 0.001) == 0);

  // Window = dimension (64 scalars).
  expt::test::LeastSquares fresh(5);
  auto cfg = optimizer_defaults("mfac");
  cfg.window = 64;
  cfg.damping = 1e-2;
  auto mfac = expt::optim::make_optimizer(cfg, fresh.store.params());
  expt::test::check_least_squares_descent(*mfac, fresh, 100, 0.003);
}

TEST_CASE("M-FAC optimizer follows the O(m^3) reference window's trajectory over 50 steps", "[optimizers][mfac]") {
  // The wrapper of MFac::step written out over MfacReferenceWindow<float> (the previous
  // implementation), on the least-squares problem (the gradient feeds back through θ).
  for (int block : {0, 23}) {
    expt::test::LeastSquares fast_problem(4), ref_problem(4);
    auto cfg = optimizer_defaults("mfac");
    cfg.window = 8;
    cfg.damping = 1e-2;
    cfg.momentum = 0.9;
    cfg.weight_decay = 0.01;
    cfg.block_size = block;
    expt::optim::MFac opt(cfg, fast_problem.store.params());
    auto refs = param_refs(fast_problem.store);
    const std::size_t d = ref_problem.store.size();
    const std::size_t bs = block == 0 ? d : static_cast<std::size_t>(block);
    std::vector<MfacReferenceWindow<float>> windows;
    for (std::size_t s = 0; s < d; s += bs) windows.emplace_back(cfg.window, std::min(bs, d - s), cfg.damping);
    std::vector<float> ghat(d), u(d), z(d, 0.0f);
    const double lr = 0.002;
    for (int t = 1; t <= 50; ++t) {
      fast_problem.loss_and_grad();
      opt.step(refs, t, lr);
      ref_problem.loss_and_grad();
      float* w = ref_problem.store.values().data();
      const float* g = ref_problem.store.grads().data();
      for (std::size_t k = 0; k < d; ++k) ghat[k] = g[k] + 0.01f * w[k];
      for (std::size_t b = 0; b < windows.size(); ++b)
        windows[b].insert_and_ihvp(ghat.data() + b * bs, u.data() + b * bs);
      for (std::size_t k = 0; k < d; ++k) {
        z[k] = 0.9f * z[k] + 0.1f * u[k];
        w[k] = w[k] - static_cast<float>(lr) * z[k];
      }
    }
    double diff = 0.0, scale = 0.0;
    for (std::size_t k = 0; k < d; ++k) {
      diff =
          std::max(diff, static_cast<double>(std::abs(fast_problem.store.values()[k] - ref_problem.store.values()[k])));
      scale = std::max(scale, static_cast<double>(std::abs(ref_problem.store.values()[k])));
    }
    INFO("block " << block << " max diff " << diff << " max |theta| " << scale);
    CHECK(diff < 1e-5 * scale);
  }
}
