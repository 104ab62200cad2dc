// DCT-AdamW against docs/derivations/dct_adamw.md: the golden two-step example, the reduction to AdamW run in
// DCT coordinates (r = min(m, n)), the remap of moments on refresh; resume, allocation, least squares.
#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "kernels/dct.hpp"
#include "optimizer_test_util.hpp"
#include "optimizers/dct_adamw.hpp"
#include "optimizers/registry.hpp"

using expt::config::optimizer_defaults;
using expt::nn::ParameterStore;
using expt::nn::ParamRole;
using expt::optim::DctAdamW;
using expt::optim::param_refs;
using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

TEST_CASE("DCT-AdamW golden two-step example (left projection, r = 2)", "[optimizers][dct_adamw]") {
  ParameterStore<float> store;
  store.add("blocks.0.mlp.up_proj.weight", {4, 6}, ParamRole::matrix);
  store.allocate();
  auto cfg = optimizer_defaults("dct_adamw");
  cfg.rank = 2;
  cfg.refresh_every = 3;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.999;
  cfg.eps = 1e-8;
  DctAdamW opt(cfg, store.params());
  auto refs = param_refs(store);
  float g1[24];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) g1[i * 6 + j] = static_cast<float>(std::cos(0.3 * (i + 1) * (j + 2)) + 0.1 * i);
  std::copy(g1, g1 + 24, store.grads().data());
  opt.step(refs, 1, 1.0);
  CHECK(opt.indices(0)[0] == 1);
  CHECK(opt.indices(0)[1] == 2);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) store.grads()[i * 6 + j] = 0.5f * g1[(3 - i) * 6 + j];
  opt.step(refs, 2, 1.0);
  const double expected[24] = {-1.5537553, -1.6469546, -1.9176334, -0.3346861, -0.3469708, 1.5835536,
                               0.1941480,  0.1666946,  0.0064048,  0.8659286,  0.8909681,  -0.1522595,
                               1.5537553,  1.6469546,  1.9176334,  0.3346861,  0.3469708,  -1.5835536,
                               -0.4687147, -0.4024363, -0.0154625, -2.0905366, -2.1509874, 0.3675868};
  for (int k = 0; k < 24; ++k) CHECK(store.values()[k] == Approx(expected[k]).margin(2e-5));
}

TEST_CASE("DCT-AdamW with full rank is AdamW in DCT coordinates (right and left)", "[optimizers][dct_adamw]") {
  for (auto [m, n] : {std::pair{7, 4}, std::pair{3, 5}}) {
    ParameterStore<float> store;
    store.add("w", {m, n}, ParamRole::matrix);
    store.allocate();
    for (int k = 0; k < m * n; ++k)
      store.values()[k] = static_cast<float>(expt::rng::normal(29, expt::rng::Stream::test, 1, 0, k));
    auto cfg = optimizer_defaults("dct_adamw");
    cfg.rank = 64;  // capped at min(m, n)
    cfg.refresh_every = 2;
    cfg.on_refresh = expt::config::OnRefresh::remap;  // keeps every slot on its index, so the moments stay exact
    cfg.weight_decay = 0.1;
    cfg.eps = 1e-3;
    DctAdamW opt(cfg, store.params());
    const int s = std::min(m, n);
    std::vector<double> c(static_cast<std::size_t>(s) * s);
    expt::kernels::dct2_matrix<double>(s, c);
    const Mat C = Eigen::Map<const Mat>(c.data(), s, s);
    const bool right = m >= n;
    Mat W(m, n);
    for (int k = 0; k < m * n; ++k) W(k / n, k % n) = store.values()[k];
    Mat M = Mat::Zero(right ? m : s, right ? s : n), V = M;
    auto refs = param_refs(store);
    const double lr = 0.01, b1 = 0.9, b2 = 0.999;
    for (int t = 1; t <= 5; ++t) {
      Mat G(m, n);
      for (int k = 0; k < m * n; ++k) {
        store.grads()[k] = static_cast<float>(expt::rng::normal(29, expt::rng::Stream::test, 2, t, k));
        G(k / n, k % n) = store.grads()[k];
      }
      opt.step(refs, t, lr);
      const Mat a = right ? Mat(G * C) : Mat(C.transpose() * G);
      M = b1 * M + (1 - b1) * a;
      V = b2 * V + (1 - b2) * a.cwiseProduct(a);
      const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
      const Mat U = (M / bc1).array() / ((V / bc2).cwiseSqrt().array() + cfg.eps);
      W = W * (1 - lr * 0.1) - lr * (right ? Mat(U * C.transpose()) : Mat(C * U));
    }
    for (int k = 0; k < m * n; ++k) CHECK(store.values()[k] == Approx(W(k / n, k % n)).margin(2e-6));
  }
}

TEST_CASE("DCT-AdamW remap moves the moments of surviving indices and zeroes new ones", "[optimizers][dct_adamw]") {
  // 6 x 4, right projection on s = 4 with r = 2. Gradients planted on DCT columns: G = X·C[:, S]ᵀ,
  // first S = {0, 2}, then S = {2, 3}: index 2 survives and moves from slot 1 to slot 0.
  std::vector<double> c(16);
  expt::kernels::dct2_matrix<double>(4, c);
  auto planted = [&](int j0, int j1, double w0, double w1) {
    std::vector<float> g(24);
    for (int a = 0; a < 6; ++a)
      for (int b = 0; b < 4; ++b)
        g[a * 4 + b] = static_cast<float>((a + 1) * (w0 * c[b * 4 + j0] + w1 * c[b * 4 + j1]));
    return g;
  };
  for (auto mode : {expt::config::OnRefresh::keep, expt::config::OnRefresh::remap}) {
    ParameterStore<float> store;
    store.add("w", {6, 4}, ParamRole::matrix);
    store.allocate();
    auto cfg = optimizer_defaults("dct_adamw");
    cfg.rank = 2;
    cfg.refresh_every = 2;
    cfg.on_refresh = mode;
    DctAdamW opt(cfg, store.params());
    auto refs = param_refs(store);
    auto g = planted(0, 2, 1.0, 2.0);
    std::copy(g.begin(), g.end(), store.grads().data());
    opt.step(refs, 1, 0.01);
    CHECK(opt.indices(0)[0] == 0);
    CHECK(opt.indices(0)[1] == 2);
    const auto before = opt.state().floats("M/w");
    g = planted(2, 3, 1.0, 3.0);
    std::copy(g.begin(), g.end(), store.grads().data());
    opt.step(refs, 2, 0.01);
    CHECK(opt.indices(0)[0] == 2);
    CHECK(opt.indices(0)[1] == 3);
    const auto after = opt.state().floats("M/w");
    for (int a = 0; a < 6; ++a) {
      const float a0 = static_cast<float>((a + 1) * 1.0), a1 = static_cast<float>((a + 1) * 3.0);
      // Slot 0 now holds index 2: remap carries the old slot-1 moment, keep the old slot-0 one.
      const float carried = mode == expt::config::OnRefresh::remap ? before[a * 2 + 1] : before[a * 2 + 0];
      const float fresh = mode == expt::config::OnRefresh::remap ? 0.0f : before[a * 2 + 1];
      CHECK(after[a * 2 + 0] == Approx(0.9f * carried + 0.1f * a0).margin(1e-5));
      CHECK(after[a * 2 + 1] == Approx(0.9f * fresh + 0.1f * a1).margin(1e-5));
    }
  }
}

TEST_CASE("DCT-AdamW: resume is bit-exact, step allocates nothing, least squares decreases",
          "[optimizers][dct_adamw]") {
  auto make = [](const expt::test::LeastSquares& p) {
    auto cfg = optimizer_defaults("dct_adamw");
    cfg.rank = 3;
    cfg.refresh_every = 3;
    cfg.on_refresh = expt::config::OnRefresh::remap;
    cfg.weight_decay = 0.01;
    return expt::optim::make_optimizer(cfg, p.store.params());
  };
  CHECK(expt::test::resume_is_bit_exact(make, 4, 5, 0.01));

  CHECK(expt::test::allocations_after_first_step(make, 4, 0.01) == 0);  // a refresh at t = 3

  expt::test::LeastSquares fresh(5);
  auto cfg = optimizer_defaults("dct_adamw");
  cfg.rank = 4;
  cfg.refresh_every = 10;
  auto opt2 = expt::optim::make_optimizer(cfg, fresh.store.params());
  expt::test::check_least_squares_descent(*opt2, fresh, 100, 0.01);
}

TEST_CASE("DCT-AdamW recovers a planted support exactly with zero reconstruction error (right and left)",
          "[optimizers][dct_adamw]") {
  // Planted support (docs/derivations/dct_adamw.md): for G = X·C[:, S]ᵀ (right, m ≥ n) or
  // G = C[:, S]·X (left), with |S| = r, the refresh at t = 1 must select exactly S (sorted ascending), and the low-rank
  // gradient a must reconstruct G with zero error: a·C[:, S]ᵀ = G (right), C[:, S]·a = G (left).
  // With M = 0 at t = 1, M = (1 − β1)·a, read back from the optimizer state.
  const std::vector<std::int64_t> S = {2, 5, 11, 12};
  const int s = 16, big = 24, r = static_cast<int>(S.size());
  std::vector<double> c(static_cast<std::size_t>(s) * s);
  expt::kernels::dct2_matrix<double>(s, c);
  const Mat C = Eigen::Map<const Mat>(c.data(), s, s);
  Mat CS(s, r);
  for (int k = 0; k < r; ++k) CS.col(k) = C.col(static_cast<int>(S[k]));
  for (const bool right : {true, false}) {
    const int m = right ? big : s, n = right ? s : big;
    Mat X(right ? big : r, right ? r : big);
    for (int k = 0; k < X.size(); ++k)
      X(k / X.cols(), k % X.cols()) = expt::rng::normal(23, expt::rng::Stream::test, right, 0, k);
    const Mat G = right ? Mat(X * CS.transpose()) : Mat(CS * X);
    ParameterStore<float> store;
    store.add("w", {m, n}, ParamRole::matrix);
    store.allocate();
    for (int k = 0; k < m * n; ++k) store.grads()[k] = static_cast<float>(G(k / n, k % n));
    auto cfg = optimizer_defaults("dct_adamw");
    cfg.rank = r;
    DctAdamW opt(cfg, store.params());
    auto refs = param_refs(store);
    opt.step(refs, 1, 0.01);
    const auto I = opt.indices(0);
    REQUIRE(I.size() == S.size());
    for (int k = 0; k < r; ++k) CHECK(I[k] == S[k]);
    const auto M = opt.state().floats("M/w");
    Mat a(right ? m : r, right ? r : n);
    REQUIRE(M.size() == static_cast<std::size_t>(a.size()));
    for (int k = 0; k < a.size(); ++k) a(k / a.cols(), k % a.cols()) = M[k] / (1.0 - cfg.beta1);
    const Mat recon = right ? Mat(a * CS.transpose()) : Mat(CS * a);
    // Zero up to the float rounding of G and of the sgemm that produced a.
    CHECK((recon - G).cwiseAbs().maxCoeff() < 1e-5 * G.cwiseAbs().maxCoeff());
    CHECK(a.cwiseAbs().maxCoeff() > 0.1);
  }
}
