// SOAP against optimizers.md 8.3: the skipped first call, minus the polar factor on a repeated
// gradient, reduction to Adam without preconditioners, orthonormal sorted bases after refreshes,
// the parameter-space momentum through refreshes, blocking; resume, allocation, least squares.
#include <Eigen/Dense>
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "allocation_counter.hpp"
#include "optimizer_test_util.hpp"
#include "optimizers/registry.hpp"
#include "optimizers/soap.hpp"

using expt::config::optimizer_defaults;
using expt::nn::ParameterStore;
using expt::nn::ParamRole;
using expt::optim::param_refs;
using expt::optim::Soap;
using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

void fill(ParameterStore<float>& store, std::uint64_t a, std::uint64_t b, bool grads, double scale = 1.0) {
  auto span = grads ? store.grads() : store.values();
  for (std::size_t k = 0; k < span.size(); ++k)
    span[k] = static_cast<float>(scale * expt::rng::normal(19, expt::rng::Stream::test, a, b, k));
}

Mat as_mat(const std::vector<double>& v, int rows, int cols) { return Eigen::Map<const Mat>(v.data(), rows, cols); }

}  // namespace

TEST_CASE("SOAP: call 1 changes nothing, and the first update on a repeated gradient is minus the polar factor",
          "[optimizers][soap]") {
  ParameterStore<float> store;
  store.add("blocks.0.mlp.up_proj.weight", {5, 3}, ParamRole::matrix);
  store.allocate();
  const float g[15] = {3, 1, 0, 1, 2, 1, 0, 1, 4, 2, 0, 1, 1, 1, 1};
  std::memcpy(store.grads().data(), g, sizeof g);
  auto cfg = optimizer_defaults("soap");
  cfg.beta1 = cfg.beta2 = cfg.shampoo_beta = 0.95;
  cfg.eps = 1e-8;
  cfg.weight_decay = 0.5;  // also not applied on call 1
  Soap opt(cfg, store.params());
  auto refs = param_refs(store);
  opt.step(refs, 1, 1.0);
  for (float w : store.values()) CHECK(w == 0.0f);
  CHECK(opt.state().scalar_int("blocks.0.mlp.up_proj.weight/t") == 0);

  cfg.weight_decay = 0.0;
  Soap opt2(cfg, store.params());
  opt2.step(refs, 1, 1.0);
  opt2.step(refs, 2, 1.0);
  Mat G(5, 3);
  for (int k = 0; k < 15; ++k) G(k / 3, k % 3) = g[k];
  Eigen::JacobiSVD<Mat> svd(G, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Mat polar = svd.matrixU() * svd.matrixV().transpose();
  double diff = 0;
  for (int k = 0; k < 15; ++k) diff = std::max(diff, std::abs(store.values()[k] + polar(k / 3, k % 3)));
  CHECK(diff < 1e-6);
  CHECK(opt2.state().scalar_int("blocks.0.mlp.up_proj.weight/t") == 1);
}

TEST_CASE("SOAP without preconditioned axes is HF-style Adam with decay after the step, shifted by one call",
          "[optimizers][soap]") {
  ParameterStore<float> store;
  store.add("blocks.0.mlp.up_proj.weight", {6, 5}, ParamRole::matrix);
  store.add("blocks.0.norm.weight", {5}, ParamRole::vector);
  store.allocate();
  fill(store, 1, 0, false);
  auto cfg = optimizer_defaults("soap");
  cfg.max_precond_dim = 4;
  cfg.weight_decay = 0.1;
  cfg.eps = 1e-3;  // large enough that the eps placement matters
  Soap opt(cfg, store.params());
  for (std::size_t i = 0; i < 2; ++i) CHECK_FALSE(opt.blocks(i)[0].left);
  std::vector<double> theta(store.values().begin(), store.values().end()), m(theta.size(), 0), v(theta.size(), 0);
  auto refs = param_refs(store);
  const double lr = 0.01, b1 = cfg.beta1, b2 = cfg.beta2;
  for (int call = 1; call <= 6; ++call) {
    fill(store, 2, call, true);
    opt.step(refs, call, lr);
    if (call == 1) continue;
    const int t = call - 1;
    for (std::size_t k = 0; k < theta.size(); ++k) {
      const double g = store.grads()[k];
      m[k] = b1 * m[k] + (1 - b1) * g;
      v[k] = b2 * v[k] + (1 - b2) * g * g;
      theta[k] -= lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t)) * m[k] / (std::sqrt(v[k]) + cfg.eps);
      theta[k] *= 1 - lr * 0.1;
    }
  }
  double diff = 0;
  for (std::size_t k = 0; k < theta.size(); ++k) diff = std::max(diff, std::abs(theta[k] - store.values()[k]));
  CHECK(diff < 1e-6);
}

TEST_CASE("SOAP refreshes keep orthonormal, sorted bases and carry the momentum exactly", "[optimizers][soap]") {
  ParameterStore<float> store;
  store.add("blocks.0.mlp.up_proj.weight", {7, 4}, ParamRole::matrix);
  store.allocate();
  fill(store, 3, 0, false);
  auto cfg = optimizer_defaults("soap");
  cfg.precondition_frequency = 1;
  Soap opt(cfg, store.params());
  auto refs = param_refs(store);
  Mat ema = Mat::Zero(7, 4);
  for (int call = 1; call <= 6; ++call) {
    fill(store, 4, call, true);
    opt.step(refs, call, 0.01);
    Mat g(7, 4);
    for (int k = 0; k < 28; ++k) g(k / 4, k % 4) = store.grads()[k];
    if (call > 1) ema = 0.95 * ema + 0.05 * g;
  }
  const Soap::Block& b = opt.blocks(0)[0];
  const Mat QL = as_mat(b.QL, 7, 7), QR = as_mat(b.QR, 4, 4);
  CHECK((QL.transpose() * QL - Mat::Identity(7, 7)).cwiseAbs().maxCoeff() < 1e-10);
  CHECK((QR.transpose() * QR - Mat::Identity(4, 4)).cwiseAbs().maxCoeff() < 1e-10);
  // diag(Qᵀ P Q) of the basis just refreshed comes out in descending order (one power step
  // after sorting keeps the order for well-separated eigenvalues).
  const Mat eL = QL.transpose() * as_mat(b.L, 7, 7) * QL;
  for (int j = 1; j < 4; ++j) CHECK(eL(j, j) <= eL(j - 1, j - 1) * (1 + 1e-9));
  // The momentum in parameter space is the plain EMA of the raw gradients, refreshes or not.
  const Mat m_param = QL * as_mat(b.M, 7, 4) * QR.transpose();
  CHECK((m_param - ema).cwiseAbs().maxCoeff() < 1e-6);
}

TEST_CASE("SOAP blocking equals independent SOAP problems on the blocks, and B >= max(m, n) equals no blocking",
          "[optimizers][soap]") {
  ParameterStore<float> whole, parts;
  whole.add("w", {6, 4}, ParamRole::matrix);
  whole.allocate();
  // Blocks of 3 x 3: rows {0..2, 3..5} x cols {0..2, 3}.
  const int r0[4] = {0, 0, 3, 3}, c0[4] = {0, 3, 0, 3}, rn[4] = {3, 3, 3, 3}, cn[4] = {3, 1, 3, 1};
  const char* names[4] = {"p0", "p1", "p2", "p3"};
  for (int b = 0; b < 4; ++b) parts.add(names[b], {rn[b], cn[b]}, ParamRole::matrix);
  parts.allocate();
  auto cfg = optimizer_defaults("soap");
  cfg.precondition_frequency = 2;
  cfg.block_size = 3;
  cfg.weight_decay = 0.1;
  Soap blocked(cfg, whole.params());
  CHECK(blocked.blocks(0).size() == 4);
  cfg.block_size = 0;
  Soap separate(cfg, parts.params());
  auto copy = [&](bool grads) {
    const float* src = grads ? whole.grads().data() : whole.values().data();
    for (int b = 0; b < 4; ++b) {
      float* dst = grads ? parts.grad(b) : parts.value(b);
      for (int i = 0; i < rn[b]; ++i)
        for (int j = 0; j < cn[b]; ++j) dst[i * cn[b] + j] = src[(r0[b] + i) * 4 + c0[b] + j];
    }
  };
  fill(whole, 5, 0, false);
  copy(false);
  auto wr = param_refs(whole), pr = param_refs(parts);
  for (int call = 1; call <= 5; ++call) {
    fill(whole, 6, call, true);
    copy(true);
    blocked.step(wr, call, 0.01);
    separate.step(pr, call, 0.01);
  }
  for (int b = 0; b < 4; ++b)
    for (int i = 0; i < rn[b]; ++i)
      for (int j = 0; j < cn[b]; ++j)
        CHECK(parts.value(b)[i * cn[b] + j] == whole.values()[(r0[b] + i) * 4 + c0[b] + j]);

  ParameterStore<float> a, c;
  for (auto* s : {&a, &c}) {
    s->add("w", {6, 4}, ParamRole::matrix);
    s->allocate();
    fill(*s, 7, 0, false);
  }
  cfg.block_size = 6;
  Soap big_block(cfg, a.params());
  cfg.block_size = 0;
  Soap unblocked(cfg, c.params());
  auto ar = param_refs(a), cr = param_refs(c);
  for (int call = 1; call <= 4; ++call) {
    fill(a, 8, call, true);
    fill(c, 8, call, true);
    big_block.step(ar, call, 0.01);
    unblocked.step(cr, call, 0.01);
  }
  CHECK(std::memcmp(a.values().data(), c.values().data(), 24 * sizeof(float)) == 0);
}

TEST_CASE("SOAP one-sided preconditions only the rows, and a zero first gradient keeps the identity basis",
          "[optimizers][soap]") {
  ParameterStore<float> store;
  store.add("w", {5, 4}, ParamRole::matrix);
  store.allocate();
  auto cfg = optimizer_defaults("soap");
  cfg.one_sided = true;
  Soap opt(cfg, store.params());
  CHECK(opt.blocks(0)[0].left);
  CHECK_FALSE(opt.blocks(0)[0].right);
  auto refs = param_refs(store);
  opt.step(refs, 1, 0.01);  // zero gradient
  CHECK((as_mat(opt.blocks(0)[0].QL, 5, 5) - Mat::Identity(5, 5)).cwiseAbs().maxCoeff() == 0.0);
  fill(store, 9, 0, true);
  for (int call = 2; call <= 12; ++call) opt.step(refs, call, 0.01);
  for (float w : store.values()) CHECK(std::isfinite(w));
}

TEST_CASE("SOAP: resume is bit-exact, step allocates nothing, least squares decreases", "[optimizers][soap]") {
  auto make = [](const expt::test::LeastSquares& p) {
    auto cfg = optimizer_defaults("soap");
    cfg.precondition_frequency = 3;
    cfg.weight_decay = 0.01;
    return expt::optim::make_optimizer(cfg, p.store.params());
  };
  CHECK(expt::test::resume_is_bit_exact(make, 5, 6, 0.01));

  expt::test::LeastSquares problem(5);
  auto opt = make(problem);
  auto refs = param_refs(problem.store);
  problem.loss_and_grad();
  opt->step(refs, 1, 0.01);
  expt::test::start_counting_allocations();
  for (int t = 2; t <= 7; ++t) opt->step(refs, t, 0.01);  // includes refresh steps
  CHECK(expt::test::stop_counting_allocations() == 0);

  expt::test::LeastSquares fresh(5);
  auto opt2 = make(fresh);
  const auto losses = expt::test::run_least_squares(*opt2, fresh, 100, 0.01);
  for (std::size_t k = 2; k < losses.size(); ++k) CHECK(losses[k] < losses[k - 1]);
  CHECK(losses.back() < 0.5 * losses.front());
}

TEST_CASE("SOAP refresh from exact eigenbases stored in ascending order sorts them descending and permutes V",
          "[optimizers][soap]") {
  // Spec 8.3.6. Plant, for a 5 x 3 matrix, L and R with distinct eigenvalues, Q_L and Q_R = their
  // exact eigenvectors in ascending eigenvalue order, V with distinct entries and M = 0, then take
  // one step with a zero gradient on a refresh step (f = 1). The zero gradient only scales the
  // statistics (L ← β_s L, V ← β2 V), so the refresh sees P Q = Q diag(β_s λ ascending): the Rayleigh
  // quotients are β_s λ, their descending argsort π reverses the order, and one power step + QR of
  // Q[:, π]·diag(λ[π]) returns Q[:, π] up to column signs. V must be permuted on both axes:
  // V_new[i][j] = β2·V_old[π_L(i)][π_R(j)].
  const int m = 5, n = 3;
  ParameterStore<float> store;
  store.add("w", {m, n}, ParamRole::matrix);
  store.allocate();
  auto cfg = optimizer_defaults("soap");
  cfg.precondition_frequency = 1;
  Soap opt(cfg, store.params());

  auto planted_spd = [](int size, std::uint64_t seed) {
    Mat a(size, size);
    for (int k = 0; k < size * size; ++k)
      a(k / size, k % size) = expt::rng::normal(seed, expt::rng::Stream::test, 30, 0, k);
    return Mat(a * a.transpose() + 0.1 * Mat::Identity(size, size));
  };
  const Mat L = planted_spd(m, 1), R = planted_spd(n, 2);
  Eigen::SelfAdjointEigenSolver<Mat> eig_l(L), eig_r(R);  // ascending eigenvalues
  const Mat QL_asc = eig_l.eigenvectors(), QR_asc = eig_r.eigenvectors();
  Mat V(m, n);
  for (int k = 0; k < m * n; ++k) V(k / n, k % n) = 1.0 + k;  // distinct entries

  expt::StateDict sd = opt.state();
  auto put = [&](const std::string& key, const Mat& x) {
    sd.put("w/0/" + key, std::span<const double>(x.data(), static_cast<std::size_t>(x.size())), {x.rows(), x.cols()});
  };
  put("L", L);
  put("QL", QL_asc);
  put("R", R);
  put("QR", QR_asc);
  put("V", V);
  put("M", Mat::Zero(m, n));
  sd.put_scalar("w/initialized", std::int64_t{1});
  sd.put_scalar("w/t", std::int64_t{0});
  opt.load_state(sd);

  auto refs = param_refs(store);
  opt.step(refs, 2, 0.01);  // zero gradient, t becomes 1, 1 mod f = 0: refresh
  for (float w : store.values()) CHECK(w == 0.0f);

  // π: descending argsort of the eigenvalues (Eigen gives them ascending, so π reverses).
  auto descending = [](const Eigen::VectorXd& ev) {
    std::vector<int> order(static_cast<std::size_t>(ev.size()));
    for (std::size_t j = 0; j < order.size(); ++j) order[j] = static_cast<int>(j);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return ev(a) > ev(b); });
    return order;
  };
  const auto pi_l = descending(eig_l.eigenvalues()), pi_r = descending(eig_r.eigenvalues());
  CHECK(pi_l == std::vector<int>{4, 3, 2, 1, 0});
  const Soap::Block& b = opt.blocks(0)[0];
  const Mat QL = as_mat(b.QL, m, m), QR = as_mat(b.QR, n, n);
  for (int j = 0; j < m; ++j) CHECK(std::abs(QL.col(j).dot(QL_asc.col(pi_l[j]))) == Approx(1.0).margin(1e-10));
  for (int j = 0; j < n; ++j) CHECK(std::abs(QR.col(j).dot(QR_asc.col(pi_r[j]))) == Approx(1.0).margin(1e-10));
  const Mat V_new = as_mat(b.V, m, n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) CHECK(V_new(i, j) == Approx(cfg.beta2 * V(pi_l[i], pi_r[j])).epsilon(1e-14));
}
