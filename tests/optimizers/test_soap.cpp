// SOAP against docs/derivations/soap.md: the skipped first call, minus the polar factor on a repeated
// gradient, reduction to Adam without preconditioners, orthonormal sorted bases after refreshes,
// the parameter-space momentum through refreshes, blocking; resume, allocation, least squares;
// the float fast path against the all-double SoapReference.
#include <Eigen/Dense>
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/gemm.hpp"
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
  Mat G(5, 3);
  for (int k = 0; k < 15; ++k) G(k / 3, k % 3) = g[k];
  Eigen::JacobiSVD<Mat> svd(G, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Mat polar = svd.matrixU() * svd.matrixV().transpose();
  const auto distance_to_minus_polar = [&] {
    double diff = 0;
    for (int k = 0; k < 15; ++k) diff = std::max(diff, std::abs(store.values()[k] + polar(k / 3, k % 3)));
    return diff;
  };
  // The exact algorithm: on a repeated gradient Ĝ = Q_Lᵀ G Q_R = diag(σ) padded with zero rows, and
  // the first update Q_L sign(Ĝ) Q_Rᵀ is minus the polar factor.
  expt::optim::SoapReference opt2(cfg, store.params());
  opt2.step(refs, 1, 1.0);
  opt2.step(refs, 2, 1.0);
  CHECK(distance_to_minus_polar() < 1e-6);
  CHECK(opt2.state().scalar_int("blocks.0.mlp.up_proj.weight/t") == 1);

  // The float path: Ĝ's exact zeros come out as float rounding, about 2^-24·‖G‖ ≈ 3e-7, and the
  // first step normalises each entry by |Ĝ| + ε/sqrt(1−β2) = |Ĝ| + 4.5ε, turning those zeros into
  // steps of size noise / (noise + 4.5ε): O(1) at ε = 1e-8 (PyTorch's fp32 SOAP alike). With
  // ε = 1e-4 they are below 1e-3, and the diagonal is σ / (σ + 4.5ε), off 1 by below 1e-3 for
  // σ >= 1: minus the polar factor to 2e-3.
  std::fill(store.values().begin(), store.values().end(), 0.0f);
  cfg.eps = 1e-4;
  Soap opt3(cfg, store.params());
  opt3.step(refs, 1, 1.0);
  opt3.step(refs, 2, 1.0);
  CHECK(svd.singularValues().minCoeff() >= 1.0);
  CHECK(distance_to_minus_polar() < 2e-3);
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

  CHECK(expt::test::allocations_after_first_step(make, 7, 0.01) == 0);  // includes refresh steps

  expt::test::LeastSquares fresh(5);
  auto opt2 = make(fresh);
  expt::test::check_least_squares_descent(*opt2, fresh, 100, 0.01, 2);
}

TEST_CASE("SOAP refresh from exact eigenbases stored in ascending order sorts them descending and permutes V",
          "[optimizers][soap]") {
  // Refresh sorting (docs/derivations/soap.md). Plant, for a 5 x 3 matrix, L and R with distinct
  // eigenvalues, Q_L and Q_R = their exact eigenvectors in ascending eigenvalue order, V with distinct entries and M =
  // 0, then take one step with a zero gradient on a refresh step (f = 1). The zero gradient only scales the statistics
  // (L ← β_s L, V ← β2 V), so the refresh sees P Q = Q diag(β_s λ ascending): the Rayleigh quotients are β_s λ, their
  // descending argsort π reverses the order, and one power step + QR of Q[:, π]·diag(λ[π]) returns Q[:, π] up to column
  // signs. V must be permuted on both axes: V_new[i][j] = β2·V_old[π_L(i)][π_R(j)].
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

TEST_CASE("syrk_upper_trans equals gemm_reference(Aᵀ, A) on the upper triangle", "[gemm][soap]") {
  // A is k x n with row stride n + 2; the strict lower triangle of C must be left alone.
  const int n = 5, k = 7, lda = n + 2;
  std::vector<float> a(static_cast<std::size_t>(k) * lda), c(n * n), ref(n * n);
  for (std::size_t q = 0; q < a.size(); ++q)
    a[q] = static_cast<float>(expt::rng::normal(3, expt::rng::Stream::test, 40, 0, q));
  for (int q = 0; q < n * n; ++q) c[q] = ref[q] = static_cast<float>(q);
  expt::kernels::syrk_upper_trans<float>(n, k, 0.5f, a.data(), lda, 2.0f, c.data(), n);
  expt::kernels::gemm_reference<float>(expt::kernels::Trans::yes, expt::kernels::Trans::no, n, n, k, 0.5f, a.data(),
                                       lda, a.data(), lda, 2.0f, ref.data(), n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      if (j >= i)
        CHECK(c[i * n + j] == Approx(ref[i * n + j]).epsilon(1e-5));
      else
        CHECK(c[i * n + j] == static_cast<float>(i * n + j));
}

TEST_CASE("SOAP's float step tracks the all-double SoapReference over 30 steps with refreshes", "[optimizers][soap]") {
  // Both start from the same planted state: per block L, R with well-separated eigenvalues
  // 100·(1 + j) and their exact bases (descending), M = V = 0, past the initialising call. A state
  // from a single gradient would not do: G (h x w) has rank min(h, w), so L or R of a rectangular
  // block has a degenerate zero eigenspace whose basis the eigensolver picks arbitrarily from
  // rounding, and Adam, elementwise in that basis, then takes different (equally valid) steps.
  struct Case {
    const char* what;
    int rows, cols, block;
    bool one_sided;
  };
  const Case cases[] = {{"square", 8, 8, 0, false},
                        {"tall", 12, 5, 0, false},
                        {"wide", 5, 12, 0, false},
                        {"blocked", 10, 7, 4, false},
                        {"one-sided", 9, 6, 0, true}};
  const auto planted = [](int size, std::uint64_t seed, Mat& basis) {
    Mat a(size, size);
    for (int k = 0; k < size * size; ++k)
      a(k / size, k % size) = expt::rng::normal(seed, expt::rng::Stream::test, 60, 0, k);
    basis = Eigen::HouseholderQR<Mat>(a).householderQ() * Mat::Identity(size, size);
    Eigen::VectorXd ev(size);
    for (int j = 0; j < size; ++j) ev(j) = 100.0 * (size - j);  // descending along the columns
    return Mat(basis * ev.asDiagonal() * basis.transpose());
  };
  for (const Case& cs : cases) {
    INFO(cs.what);
    ParameterStore<float> fast_store, ref_store;
    for (auto* s : {&fast_store, &ref_store}) {
      s->add("w", {cs.rows, cs.cols}, ParamRole::matrix);
      s->add("b", {cs.cols}, ParamRole::vector);
      s->allocate();
    }
    auto cfg = optimizer_defaults("soap");
    cfg.precondition_frequency = 4;  // 7 refreshes in 30 steps
    cfg.block_size = cs.block;
    cfg.one_sided = cs.one_sided;
    cfg.weight_decay = 0.1;
    Soap fast(cfg, fast_store.params());
    expt::optim::SoapReference ref(cfg, ref_store.params());
    expt::StateDict sd = ref.state();
    sd.put_scalar("w/initialized", std::int64_t{1});
    sd.put_scalar("b/initialized", std::int64_t{1});
    for (std::size_t bi = 0; bi < ref.blocks(0).size(); ++bi) {
      const Soap::Block& b = ref.blocks(0)[bi];
      const std::string prefix = "w/" + std::to_string(bi) + "/";
      const auto put = [&](const char* key, const Mat& x) {
        sd.put(prefix + key, std::span<const double>(x.data(), static_cast<std::size_t>(x.size())),
               {x.rows(), x.cols()});
      };
      Mat q;
      if (b.left) {
        put("L", planted(b.rows, 2 * bi + 1, q));
        put("QL", q);
      }
      if (b.right) {
        put("R", planted(b.cols, 2 * bi + 2, q));
        put("QR", q);
      }
    }
    fast.load_state(sd);
    ref.load_state(sd);
    auto fr = param_refs(fast_store), rr = param_refs(ref_store);
    for (int call = 1; call <= 30; ++call) {
      auto g = fast_store.grads();
      for (std::size_t k = 0; k < g.size(); ++k)
        g[k] = static_cast<float>(expt::rng::normal(21, expt::rng::Stream::test, 50, call, k));
      std::copy(g.begin(), g.end(), ref_store.grads().begin());
      fast.step(fr, call, 0.01);
      ref.step(rr, call, 0.01);
    }
    // Parameters start at 0, so max |W_ref| is the size of the 30 updates (≈ 0.3). The fast path
    // rounds each sum of the rotations and syrks once in float (relative 2^-24 times the inner
    // length, <= 12 here: <= 1e-6 of each update), and the statistics' rounding moves the refreshed
    // bases by about that times ‖L‖/gap (<= 12). Measured: 1e-7 to 2e-7 of the displacement, about
    // W's own float rounding; the bound 1e-5 leaves room for the basis term. A float basis left
    // stale after a refresh gives 2e-3 to 5e-3 here.
    double diff = 0, size = 0;
    for (std::size_t k = 0; k < fast_store.values().size(); ++k) {
      diff = std::max(diff, static_cast<double>(std::abs(fast_store.values()[k] - ref_store.values()[k])));
      size = std::max(size, static_cast<double>(std::abs(ref_store.values()[k])));
    }
    INFO("relative parameter difference " << diff / size);
    CHECK(size > 0.1);
    CHECK(diff < 1e-5 * size);
    // L and R (whole, as state() gives them): the same EMA in double of G Gᵀ rounded once in float
    // against exact in double.
    const expt::StateDict fs = fast.state(), rs = ref.state();
    for (std::size_t bi = 0; bi < fast.blocks(0).size(); ++bi)
      for (const char* key : {"L", "R"}) {
        const std::string name = "w/" + std::to_string(bi) + "/" + key;
        if (!rs.contains(name)) continue;
        const std::vector<double>&x = fs.doubles(name), &y = rs.doubles(name);
        double d = 0, m = 0;
        for (std::size_t k = 0; k < x.size(); ++k) {
          d = std::max(d, std::abs(x[k] - y[k]));
          m = std::max(m, std::abs(y[k]));
        }
        INFO(name);
        CHECK(d <= 1e-6 * m);
      }
  }
}

TEST_CASE("SOAP merge_dims gives a small matrix one full preconditioner over its m·n entries", "[optimizers][soap]") {
  // The original soap.py's merge_dims: a 3 x 4 matrix with max_precond_dim 12 is the vector
  // g = vec(G) (12 entries, row-major) with a 12 x 12 statistic; a 4 x 4 matrix (16 > 12) keeps its
  // two axes; a vector stays plain Adam (no precondition_1d).
  ParameterStore<float> store;
  store.add("w", {3, 4}, ParamRole::matrix);
  store.add("square", {4, 4}, ParamRole::matrix);
  store.add("b", {4}, ParamRole::vector);
  store.allocate();
  auto cfg = optimizer_defaults("soap");
  cfg.merge_dims = true;
  cfg.max_precond_dim = 12;
  cfg.shampoo_beta = 0.9;
  Soap opt(cfg, store.params());
  REQUIRE(opt.blocks(0).size() == 1);
  const Soap::Block& merged = opt.blocks(0)[0];
  CHECK((merged.rows == 1 && merged.cols == 12 && !merged.left && merged.right));
  CHECK((opt.blocks(1)[0].rows == 4 && opt.blocks(1)[0].left && opt.blocks(1)[0].right));
  CHECK_FALSE((opt.blocks(2)[0].left || opt.blocks(2)[0].right));
  CHECK(opt.preconditioned_params() == std::vector<std::size_t>{0, 1});

  // Call 1 sets the statistic to (1 − β_s)·g gᵀ over the 12 entries.
  fill(store, 70, 1, true);
  auto refs = param_refs(store);
  opt.step(refs, 1, 0.01);
  const Mat R = as_mat(opt.state().doubles("w/0/R"), 12, 12);
  Eigen::VectorXd g(12);
  for (int k = 0; k < 12; ++k) g(k) = store.grads()[k];
  const Mat expected = (1 - cfg.shampoo_beta) * g * g.transpose();
  CHECK((R - expected).cwiseAbs().maxCoeff() < 1e-6 * expected.cwiseAbs().maxCoeff());
  // Its basis is an eigenbasis of the statistic, the largest eigenvalue first (along g).
  const Mat Q = as_mat(opt.state().doubles("w/0/QR"), 12, 12);
  CHECK((Q.transpose() * Q - Mat::Identity(12, 12)).cwiseAbs().maxCoeff() < 1e-10);
  CHECK(std::abs(std::abs(Q.col(0).dot(g.normalized())) - 1) < 1e-6);
}

TEST_CASE("SOAP merge_dims follows an independent fp64 reimplementation of the original's vector step",
          "[optimizers][soap]") {
  // The reference below is written from the original soap.py's algorithm on the merged vector
  // g = vec(G) (12 entries), in plain fp64 and with its own orthonormalisation (modified
  // Gram-Schmidt; QR's column signs cancel, docs/derivations/soap.md): ĝ = Qᵀ g, M and V in the
  // eigenbasis, w ← w − α·Q (M ⊘ (sqrt(V) + ε)), decay, P ← β_s P + (1 − β_s) g gᵀ, and every f
  // updates the momentum to parameter space, one power step P·Q with its columns sorted by the
  // Rayleigh quotients (V permuted alike), orthonormalised, the momentum back. Both start from a
  // planted state (P with well-separated eigenvalues and its exact basis, past the initialising
  // call): a single gradient's g gᵀ has an 11-dimensional zero eigenspace whose basis an
  // eigensolver picks arbitrarily.
  constexpr int n = 12;
  Mat basis;
  {
    Mat a(n, n);
    for (int k = 0; k < n * n; ++k) a(k / n, k % n) = expt::rng::normal(23, expt::rng::Stream::test, 71, 0, k);
    basis = Eigen::HouseholderQR<Mat>(a).householderQ() * Mat::Identity(n, n);
  }
  Eigen::VectorXd ev(n);
  for (int j = 0; j < n; ++j) ev(j) = 10.0 * (n - j);
  const Mat P0 = basis * ev.asDiagonal() * basis.transpose();

  auto cfg = optimizer_defaults("soap");
  cfg.merge_dims = true;
  cfg.max_precond_dim = n;
  cfg.precondition_frequency = 3;  // 8 refreshes in 25 updates
  cfg.shampoo_beta = 0.9;
  cfg.weight_decay = 0.1;
  cfg.eps = 1e-6;
  const double lr = 0.01, b1 = cfg.beta1, b2 = cfg.beta2, bs = cfg.shampoo_beta;
  ParameterStore<float> fast_store, double_store;
  for (auto* s : {&fast_store, &double_store}) {
    s->add("w", {3, 4}, ParamRole::matrix);
    s->allocate();
    fill(*s, 72, 0, false);
  }
  Soap fast(cfg, fast_store.params());
  expt::optim::SoapReference all_double(cfg, double_store.params());
  expt::StateDict sd = all_double.state();
  sd.put_scalar("w/initialized", std::int64_t{1});
  sd.put("w/0/R", std::span<const double>(P0.data(), n * n), {n, n});
  sd.put("w/0/QR", std::span<const double>(basis.data(), n * n), {n, n});
  fast.load_state(sd);
  all_double.load_state(sd);

  std::vector<float> w(fast_store.values().begin(), fast_store.values().end());
  const std::vector<float> w_start = w;
  Eigen::VectorXd m = Eigen::VectorXd::Zero(n), v = Eigen::VectorXd::Zero(n);
  Mat P = P0, Q = basis;
  auto fr = param_refs(fast_store), dr = param_refs(double_store);
  for (int call = 1; call <= 25; ++call) {
    fill(fast_store, 73, call, true);
    fill(double_store, 73, call, true);
    fast.step(fr, call, lr);
    all_double.step(dr, call, lr);

    Eigen::VectorXd g(n);
    for (int k = 0; k < n; ++k) g(k) = fast_store.grads()[k];
    const int t = call;
    const Eigen::VectorXd gh = Q.transpose() * g;
    m = b1 * m + (1 - b1) * gh;
    v = b2 * v + (1 - b2) * gh.cwiseProduct(gh);
    const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    Eigen::VectorXd direction(n);
    for (int j = 0; j < n; ++j) direction(j) = m(j) / (std::sqrt(v(j)) + cfg.eps);
    const Eigen::VectorXd update = Q * direction;
    // The parameters are float32: each step ends in one rounding.
    for (int k = 0; k < n; ++k) w[k] = static_cast<float>((w[k] - alpha * update(k)) * (1 - lr * cfg.weight_decay));
    P = bs * P + (1 - bs) * g * g.transpose();
    if (t % cfg.precondition_frequency == 0) {
      const Eigen::VectorXd m_param = Q * m;
      const Mat S = P * Q;
      std::vector<int> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::vector<double> rayleigh(n);
      for (int j = 0; j < n; ++j) rayleigh[j] = Q.col(j).dot(S.col(j));
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return rayleigh[a] > rayleigh[b]; });
      Mat next(n, n);
      Eigen::VectorXd v_sorted(n);
      for (int j = 0; j < n; ++j) {
        Eigen::VectorXd col = S.col(order[j]);
        for (int i = 0; i < j; ++i) col -= next.col(i).dot(col) * next.col(i);
        next.col(j) = col.normalized();
        v_sorted(j) = v(order[j]);
      }
      Q = next;
      v = v_sorted;
      m = Q.transpose() * m_param;
    }
  }
  double diff_double = 0, diff_fast = 0, moved = 0;
  for (int k = 0; k < n; ++k) {
    diff_double = std::max(diff_double, static_cast<double>(std::abs(double_store.values()[k] - w[k])));
    diff_fast = std::max(diff_fast, static_cast<double>(std::abs(fast_store.values()[k] - w[k])));
  }
  for (int k = 0; k < n; ++k) moved = std::max(moved, static_cast<double>(std::abs(w[k] - w_start[k])));
  INFO("moved " << moved << ", all-double off by " << diff_double << ", float off by " << diff_fast);
  CHECK(moved > 0.05);
  // All-double: the same arithmetic up to summation order, so the same float parameters but for a
  // rare last-bit flip (measured: identical); an algorithmic difference (a wrong permutation of V,
  // a stale basis, Adam instead of the preconditioner) is 1e-3 to 1e-1 of the displacement.
  // Float: rotations and statistics rounded in float, within 1e-5 of the displacement as in the
  // float-vs-double test above (measured: one float ulp).
  CHECK(diff_double <= 1e-6 * moved);
  CHECK(diff_fast <= 1e-5 * moved);
  // The statistic P (whole, as state() gives it) is the same EMA.
  const Mat P_fast = as_mat(fast.state().doubles("w/0/R"), n, n);
  CHECK((P_fast - P).cwiseAbs().maxCoeff() < 1e-6 * P.cwiseAbs().maxCoeff());
}
