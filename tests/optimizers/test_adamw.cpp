// AdamW against the invariants of docs/derivations/adamw.md and an independent double-precision reference.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "allocation_counter.hpp"
#include "core/util/random.hpp"
#include "optimizers/adamw.hpp"
#include "optimizers/registry.hpp"

using expt::nn::ParameterStore;
using expt::nn::ParamRole;
using expt::optim::AdamW;
using expt::optim::GroupRule;
using expt::optim::param_refs;

using expt::optim::EpsMode;

namespace {

expt::config::OptimizerConfig make_cfg(double wd, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                                       EpsMode eps_mode = EpsMode::torch) {
  expt::config::OptimizerConfig cfg;
  cfg.weight_decay = wd;
  cfg.beta1 = beta1;
  cfg.beta2 = beta2;
  cfg.eps = eps;
  cfg.eps_mode = eps_mode;
  return cfg;
}

// A store with one parameter per role, filled with normal(0,1) values.
void build_model(ParameterStore<float>& store) {
  store.add("embed.weight", {7, 3}, ParamRole::embedding);
  store.add("blocks.0.mixer.q_proj.weight", {4, 3}, ParamRole::matrix);
  store.add("blocks.0.norm.weight", {3}, ParamRole::vector);
  store.add("lm_head.weight", {7, 3}, ParamRole::head);
  store.allocate();
  auto values = store.values();
  for (std::size_t k = 0; k < values.size(); ++k)
    values[k] = static_cast<float>(expt::rng::normal(11, expt::rng::Stream::test, 0, 0, k));
}

void fill_grads(ParameterStore<float>& store, std::uint64_t step) {
  auto grads = store.grads();
  for (std::size_t k = 0; k < grads.size(); ++k)
    grads[k] = static_cast<float>(expt::rng::normal(11, expt::rng::Stream::test, 1, step, k));
}

// Textbook AdamW in double (docs/derivations/adamw.md). HF mode is implemented through the stated
// equivalence: torch formula with eps replaced by eps/sqrt(bc2).
struct ReferenceAdamW {
  double beta1, beta2, eps;
  bool hf;
  std::vector<double> m, v;
  long t = 0;
  void step(std::vector<double>& theta, const std::vector<double>& g, double lr, double wd) {
    if (m.empty()) {
      m.assign(theta.size(), 0.0);
      v.assign(theta.size(), 0.0);
    }
    ++t;
    const double bc1 = 1.0 - std::pow(beta1, t);
    const double bc2 = 1.0 - std::pow(beta2, t);
    const double e = hf ? eps / std::sqrt(bc2) : eps;
    for (std::size_t k = 0; k < theta.size(); ++k) {
      theta[k] *= 1.0 - lr * wd;
      m[k] = beta1 * m[k] + (1.0 - beta1) * g[k];
      v[k] = beta2 * v[k] + (1.0 - beta2) * g[k] * g[k];
      const double m_hat = m[k] / bc1, v_hat = v[k] / bc2;
      theta[k] -= lr * m_hat / (std::sqrt(v_hat) + e);
    }
  }
};

}  // namespace

TEST_CASE("adamw: constant-gradient closed form and golden value", "[adamw]") {
  const double theta0 = 1.0, g = 0.5, lr = 1e-2, wd = 0.1, eps = 1e-8;
  const int T = 10;
  // Closed form in double: m_hat = g, v_hat = g^2 exactly, so u = g/(|g|+eps) every step.
  const double q = 1.0 - lr * wd;
  const double u = g / (std::abs(g) + eps);
  const double closed = std::pow(q, T) * theta0 - lr * u * (1.0 - std::pow(q, T)) / (1.0 - q);
  REQUIRE(closed == Approx(0.8904936842982544).epsilon(1e-14));

  ParameterStore<float> store;
  store.add("w", {1, 1}, ParamRole::matrix);
  store.allocate();
  store.values()[0] = static_cast<float>(theta0);
  store.grads()[0] = static_cast<float>(g);
  AdamW opt(make_cfg(wd, 0.9, 0.999, eps), store.params());
  const auto refs = param_refs(store);
  for (int t = 1; t <= T; ++t) opt.step(refs, t, lr);
  CHECK(std::abs(store.values()[0] - 0.8904936842982544) < 1e-6);
  CHECK(std::abs(store.values()[0] - closed) < 1e-6);
  CHECK(opt.state().scalar_int("t/w") == T);

  // lambda = 0: theta_T = theta_0 - T*lr*u.
  ParameterStore<float> plain;
  plain.add("w", {1}, ParamRole::vector);
  plain.allocate();
  plain.values()[0] = 1.0f;
  plain.grads()[0] = -0.25f;
  AdamW opt0(make_cfg(0.0), plain.params());
  const auto refs0 = param_refs(plain);
  for (int t = 1; t <= T; ++t) opt0.step(refs0, t, lr);
  CHECK(std::abs(plain.values()[0] - (1.0 + T * lr * 0.25 / (0.25 + eps))) < 1e-6);
}

TEST_CASE("adamw: zero gradient only decays, no NaN", "[adamw]") {
  const double lr = 3e-2, wd = 0.5;
  ParameterStore<float> store;
  store.add("w", {3, 2}, ParamRole::matrix);
  store.allocate();
  std::vector<double> theta0(6);
  for (std::size_t k = 0; k < 6; ++k) store.values()[k] = static_cast<float>(theta0[k] = 0.5 * k - 1.0);
  AdamW opt(make_cfg(wd), store.params());
  const auto refs = param_refs(store);
  for (int t = 1; t <= 20; ++t) {
    opt.step(refs, t, lr);
    for (std::size_t k = 0; k < 6; ++k) {
      const double expected = std::pow(1.0 - lr * wd, t) * theta0[k];
      REQUIRE(std::isfinite(store.values()[k]));
      CHECK(std::abs(store.values()[k] - expected) <= 1e-6 * (1.0 + std::abs(expected)));
    }
  }
}

TEST_CASE("adamw: beta1 = beta2 = 0 gives the update g/(|g|+eps)", "[adamw]") {
  const double lr = 1e-2, eps = 1e-3;  // eps visible next to |g|
  ParameterStore<float> store;
  store.add("w", {5}, ParamRole::vector);
  store.allocate();
  AdamW opt(make_cfg(0.0, 0.0, 0.0, eps), store.params());
  const auto refs = param_refs(store);
  for (int t = 1; t <= 10; ++t) {
    fill_grads(store, t);
    store.grads()[0] = 2e-3f;  // |g| comparable to eps
    std::vector<double> before(store.values().begin(), store.values().end());
    opt.step(refs, t, lr);
    for (std::size_t k = 0; k < 5; ++k) {
      const double g = store.grads()[k];
      const double expected = before[k] - lr * g / (std::abs(g) + eps);
      CHECK(std::abs(store.values()[k] - expected) < 1e-6);
    }
  }
}

TEST_CASE("adamw: hf and torch eps placement", "[adamw]") {
  const double lr = 1e-2;
  ParameterStore<float> torch_store, hf_store;
  for (auto* s : {&torch_store, &hf_store}) {
    s->add("w", {8}, ParamRole::vector);
    s->allocate();
  }
  SECTION("identical when eps = 0") {
    AdamW torch_opt(make_cfg(0.0, 0.9, 0.999, 0.0, EpsMode::torch), torch_store.params());
    AdamW hf_opt(make_cfg(0.0, 0.9, 0.999, 0.0, EpsMode::hf), hf_store.params());
    CHECK(hf_opt.eps_mode() == expt::optim::EpsMode::hf);
    for (int t = 1; t <= 20; ++t) {
      fill_grads(torch_store, t);
      fill_grads(hf_store, t);
      torch_opt.step(param_refs(torch_store), t, lr);
      hf_opt.step(param_refs(hf_store), t, lr);
    }
    for (std::size_t k = 0; k < 8; ++k)
      CHECK(std::abs(torch_store.values()[k] - hf_store.values()[k]) <=
            1e-6 * (1.0 + std::abs(torch_store.values()[k])));
  }
  SECTION("hf equals torch with eps_eff = eps/sqrt(bc2)") {
    const double eps = 1e-2;  // large eps so bc2 matters: the modes must differ in early steps
    AdamW torch_opt(make_cfg(0.0, 0.9, 0.999, eps, EpsMode::torch), torch_store.params());
    AdamW hf_opt(make_cfg(0.0, 0.9, 0.999, eps, EpsMode::hf), hf_store.params());
    ReferenceAdamW ref{0.9, 0.999, eps, true, {}, {}};
    std::vector<double> theta(8, 0.0);
    for (int t = 1; t <= 15; ++t) {
      fill_grads(torch_store, t);
      fill_grads(hf_store, t);
      std::vector<double> g(hf_store.grads().begin(), hf_store.grads().end());
      for (auto& x : g) x *= 0.1;  // |g| ~ 0.1, sqrt(v_hat) ~ 0.1: eps_eff = eps/sqrt(bc2) dominates early
      for (std::size_t k = 0; k < 8; ++k) hf_store.grads()[k] = torch_store.grads()[k] = static_cast<float>(g[k]);
      torch_opt.step(param_refs(torch_store), t, lr);
      hf_opt.step(param_refs(hf_store), t, lr);
      ref.step(theta, g, lr, 0.0);
      for (std::size_t k = 0; k < 8; ++k) CHECK(std::abs(hf_store.values()[k] - theta[k]) < 1e-6);
    }
    double max_diff = 0.0;
    for (std::size_t k = 0; k < 8; ++k)
      max_diff = std::max<double>(max_diff, std::abs(hf_store.values()[k] - torch_store.values()[k]));
    CHECK(max_diff > 1e-3);
  }
}

TEST_CASE("adamw: matches a double-precision reference on random vectors for 50 steps", "[adamw]") {
  for (EpsMode mode : {EpsMode::torch, EpsMode::hf}) {
    ParameterStore<float> store;
    build_model(store);
    const double wd = 0.1;
    auto cfg = make_cfg(wd, 0.9, 0.95, 1e-8, mode);
    // The mixer matrix gets half the lr and a larger decay, the other 2-D weights the default.
    const std::vector<GroupRule> rules = {
        {"mixer", {}, "*.mixer.*", 0.5, 0.2},
        {"decay", {ParamRole::matrix, ParamRole::head}, "", 1.0, wd},
        {"no_decay", {ParamRole::vector, ParamRole::embedding}, "", 1.0, 0.0},
    };
    AdamW opt(cfg, store.params(), rules);
    const auto refs = param_refs(store);

    const double lr_scale[] = {1.0, 0.5, 1.0, 1.0};  // per parameter, in store order
    const double decay[] = {0.0, 0.2, 0.0, wd};
    std::vector<std::vector<double>> theta;
    std::vector<ReferenceAdamW> ref;
    for (std::size_t i = 0; i < refs.size(); ++i) {
      theta.emplace_back(refs[i].value, refs[i].value + refs[i].size());
      ref.push_back(ReferenceAdamW{0.9, 0.95, 1e-8, mode == EpsMode::hf, {}, {}});
    }
    for (int t = 1; t <= 50; ++t) {
      fill_grads(store, t);
      const double lr = 1e-2 * (1.0 + 0.5 * std::sin(t));  // a varying scheduled lr
      opt.step(refs, t, lr);
      for (std::size_t i = 0; i < refs.size(); ++i) {
        std::vector<double> g(refs[i].grad, refs[i].grad + refs[i].size());
        ref[i].step(theta[i], g, lr * lr_scale[i], decay[i]);
      }
    }
    for (std::size_t i = 0; i < refs.size(); ++i)
      for (std::size_t k = 0; k < refs[i].size(); ++k)
        CHECK(std::abs(refs[i].value[k] - theta[i][k]) <= 2e-5 * (1.0 + std::abs(theta[i][k])));
  }
}

TEST_CASE("adamw: default groups route by role", "[adamw][groups]") {
  ParameterStore<float> store;
  build_model(store);  // 0 embedding, 1 matrix, 2 vector, 3 head
  SECTION("embeddings not decayed by default") {
    AdamW opt(make_cfg(0.1), store.params());
    REQUIRE(opt.groups().size() == 2);
    CHECK(opt.groups()[0].name == "decay");
    CHECK(opt.groups()[0].weight_decay == 0.1);
    CHECK(opt.groups()[0].params == std::vector<std::size_t>{1, 3});
    CHECK(opt.groups()[1].name == "no_decay");
    CHECK(opt.groups()[1].weight_decay == 0.0);
    CHECK(opt.groups()[1].params == std::vector<std::size_t>{0, 2});

    // Behaviour: with zero gradients only the decay group shrinks.
    std::vector<float> before(store.values().begin(), store.values().end());
    opt.step(param_refs(store), 1, 0.5);
    for (std::size_t i = 0; i < store.params().size(); ++i) {
      const auto& p = store.params()[i];
      const bool decayed = p.role == ParamRole::matrix || p.role == ParamRole::head;
      for (std::size_t k = p.offset; k < p.offset + p.size; ++k)
        CHECK(store.values()[k] == Approx(before[k] * (decayed ? 0.95 : 1.0)).epsilon(1e-6));
    }
  }
  SECTION("decay_embeddings moves the embedding to the decay group") {
    auto cfg = make_cfg(0.1);
    cfg.decay_embeddings = true;
    AdamW opt(cfg, store.params());
    CHECK(opt.groups()[0].params == std::vector<std::size_t>{0, 1, 3});
    CHECK(opt.groups()[1].params == std::vector<std::size_t>{2});
  }
}

TEST_CASE("adamw: state round trip resumes bit-exactly", "[adamw][state]") {
  for (EpsMode mode : {EpsMode::torch, EpsMode::hf}) {
    auto cfg = make_cfg(0.1, 0.9, 0.99, 1e-8, mode);
    ParameterStore<float> straight, first, resumed;
    build_model(straight);
    build_model(first);
    build_model(resumed);
    AdamW opt_straight(cfg, straight.params());
    auto opt_first = expt::optim::make_optimizer(cfg, first.params());
    for (int t = 1; t <= 10; ++t) {
      fill_grads(straight, t);
      opt_straight.step(param_refs(straight), t, 1e-2 / t);
    }
    for (int t = 1; t <= 4; ++t) {
      fill_grads(first, t);
      opt_first->step(param_refs(first), t, 1e-2 / t);
    }
    const expt::StateDict saved = opt_first->state();
    CHECK(saved.floats("m/lm_head.weight").size() == 21);
    CHECK(saved.entries().at("v/embed.weight").shape == std::vector<std::int64_t>{7, 3});
    CHECK(saved.scalar_int("t/blocks.0.norm.weight") == 4);

    // A fresh optimizer and fresh parameter copy continue from the saved state.
    auto opt_resumed = expt::optim::make_optimizer(cfg, resumed.params());
    opt_resumed->load_state(saved);
    std::copy(first.values().begin(), first.values().end(), resumed.values().begin());
    for (int t = 5; t <= 10; ++t) {
      fill_grads(resumed, t);
      opt_resumed->step(param_refs(resumed), t, 1e-2 / t);
    }
    REQUIRE(std::memcmp(resumed.values().data(), straight.values().data(), straight.size() * sizeof(float)) == 0);
    const auto a = opt_resumed->state(), b = opt_straight.state();
    for (const auto& [key, entry] : b.entries()) {
      if (key.starts_with("t/")) {
        CHECK(a.scalar_int(key) == b.scalar_int(key));
      } else {
        const auto& x = a.floats(key);
        const auto& y = b.floats(key);
        REQUIRE(x.size() == y.size());
        CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("adamw: load_state rejects mismatched state and stays untouched", "[adamw][state]") {
  ParameterStore<float> store;
  build_model(store);
  AdamW opt(make_cfg(0.1), store.params());
  fill_grads(store, 1);
  opt.step(param_refs(store), 1, 1e-2);
  const auto good = opt.state();

  auto missing = good;
  missing.entries().erase("v/blocks.0.norm.weight");
  auto wrong_size = good;
  wrong_size.put("m/lm_head.weight", std::vector<float>(5, 0.0f));
  auto extra = good;
  extra.put("m/not_a_param", std::vector<float>(3, 0.0f));
  auto wrong_type = good;
  wrong_type.put("t/embed.weight", std::vector<double>{1.0});

  AdamW fresh(make_cfg(0.1), store.params());
  const auto before = fresh.state();
  for (const auto* bad : {&missing, &wrong_size, &extra, &wrong_type}) {
    CHECK_THROWS_AS(fresh.load_state(*bad), std::runtime_error);
    const auto now = fresh.state();
    for (const auto& [key, entry] : before.entries())
      if (!key.starts_with("t/")) CHECK(now.floats(key) == before.floats(key));
    CHECK(now.scalar_int("t/embed.weight") == 0);
  }
  CHECK_THROWS_WITH(fresh.load_state(missing), Catch::Contains("v/blocks.0.norm.weight"));
  CHECK_THROWS_WITH(fresh.load_state(wrong_size), Catch::Contains("m/lm_head.weight"));
  CHECK_THROWS_WITH(fresh.load_state(extra), Catch::Contains("m/not_a_param"));
  CHECK_NOTHROW(fresh.load_state(good));
}

TEST_CASE("adamw: step checks its parameters and does not allocate", "[adamw]") {
  ParameterStore<float> store, other;
  build_model(store);
  other.add("x", {2}, ParamRole::vector);
  other.allocate();
  AdamW opt(make_cfg(0.1), store.params());
  const auto refs = param_refs(store);
  CHECK_THROWS_AS(opt.step(param_refs(other), 1, 1e-2), std::invalid_argument);
  auto swapped = refs;
  std::swap(swapped[0], swapped[3]);  // same sizes, different names
  CHECK_THROWS_AS(opt.step(swapped, 1, 1e-2), std::invalid_argument);

  fill_grads(store, 1);
  expt::test::start_counting_allocations();
  opt.step(refs, 1, 1e-2);
  opt.step(refs, 2, 1e-2);
  CHECK(expt::test::stop_counting_allocations() == 0);
  // The counter itself works: building the state dict allocates.
  expt::test::start_counting_allocations();
  const auto state = opt.state();
  CHECK(expt::test::stop_counting_allocations() > 0);
  CHECK(state.scalar_int("t/embed.weight") == 2);
}

TEST_CASE("adamw: config validation and registry", "[adamw][registry]") {
  ParameterStore<float> store;
  build_model(store);
  CHECK_THROWS_AS(AdamW(make_cfg(0.0, 1.0), store.params()), std::invalid_argument);
  CHECK_THROWS_AS(AdamW(make_cfg(0.0, 0.9, -0.1), store.params()), std::invalid_argument);
  CHECK_THROWS_AS(AdamW(make_cfg(0.0, 0.9, 0.999, -1.0), store.params()), std::invalid_argument);

  auto cfg = make_cfg(0.0);
  auto opt = expt::optim::make_optimizer(cfg, store.params());
  CHECK(opt->name() == "adamw");
  CHECK(dynamic_cast<AdamW*>(opt.get()) != nullptr);
  cfg.type = "adamax";
  CHECK_THROWS_AS(expt::optim::make_optimizer(cfg, store.params()), std::invalid_argument);
  CHECK_THROWS_WITH(expt::optim::make_optimizer(cfg, store.params()),
                    Catch::Contains("adamax") && Catch::Contains("adamw"));
  CHECK(expt::optim::known_optimizer_types() == std::vector<std::string>{"adamw", "muon", "soap", "mfac", "dct_adamw"});
}

TEST_CASE("adamw: decreases a least-squares loss to its optimum", "[adamw]") {
  // loss(x) = 1/(2n) * ||A x - b||^2 with A n x d, b = A x* + noise; the optimum comes from the
  // normal equations solved in double by Gaussian elimination.
  const int n = 40, d = 6;
  std::vector<double> A(n * d), b(n);
  for (int i = 0; i < n * d; ++i) A[i] = expt::rng::normal(3, expt::rng::Stream::test, 7, 0, i);
  for (int i = 0; i < n; ++i) {
    double s = 0.0;
    for (int j = 0; j < d; ++j) s += A[i * d + j] * (j + 1.0);
    b[i] = s + 0.1 * expt::rng::normal(3, expt::rng::Stream::test, 8, 0, i);
  }
  auto loss_and_grad = [&](const float* x, float* grad) {
    double loss = 0.0;
    std::vector<double> g(d, 0.0);
    for (int i = 0; i < n; ++i) {
      double r = -b[i];
      for (int j = 0; j < d; ++j) r += A[i * d + j] * x[j];
      loss += 0.5 * r * r / n;
      for (int j = 0; j < d; ++j) g[j] += A[i * d + j] * r / n;
    }
    if (grad)
      for (int j = 0; j < d; ++j) grad[j] = static_cast<float>(g[j]);
    return loss;
  };
  // Normal equations (A^T A) x = A^T b.
  std::vector<double> M(d * (d + 1), 0.0);
  for (int r = 0; r < d; ++r) {
    for (int c = 0; c < d; ++c)
      for (int i = 0; i < n; ++i) M[r * (d + 1) + c] += A[i * d + r] * A[i * d + c];
    for (int i = 0; i < n; ++i) M[r * (d + 1) + d] += A[i * d + r] * b[i];
  }
  for (int c = 0; c < d; ++c)
    for (int r = c + 1; r < d; ++r) {
      const double f = M[r * (d + 1) + c] / M[c * (d + 1) + c];
      for (int k = c; k <= d; ++k) M[r * (d + 1) + k] -= f * M[c * (d + 1) + k];
    }
  std::vector<float> x_star(d);
  std::vector<double> xs(d);
  for (int r = d - 1; r >= 0; --r) {
    double s = M[r * (d + 1) + d];
    for (int k = r + 1; k < d; ++k) s -= M[r * (d + 1) + k] * xs[k];
    xs[r] = s / M[r * (d + 1) + r];
    x_star[r] = static_cast<float>(xs[r]);
  }
  const double optimum = loss_and_grad(x_star.data(), nullptr);

  ParameterStore<float> store;
  store.add("x", {d}, ParamRole::vector);
  store.allocate();
  AdamW opt(make_cfg(0.0), store.params());
  const auto refs = param_refs(store);
  const double initial = loss_and_grad(store.value(0), store.grad(0));
  for (int t = 1; t <= 1500; ++t) {
    const double lr = t <= 1000 ? 5e-2 : 5e-3;  // a drop at the end lets Adam settle into the minimum
    opt.step(refs, t, lr);
    const double loss = loss_and_grad(store.value(0), store.grad(0));
    if (t == 100) CHECK(loss < 0.5 * initial);
  }
  const double final_loss = loss_and_grad(store.value(0), nullptr);
  CHECK(final_loss < 0.01 * initial);
  CHECK(final_loss - optimum < 1e-4);
}
