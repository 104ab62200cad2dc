// Gradient checks (central differences, double) and independent forward references for each
// module: Linear, Embedding, RMSNorm, the MLPs (swiglu, silu), causal self-attention, block.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "core/nn/attention.hpp"
#include "core/nn/block.hpp"
#include "core/nn/embedding.hpp"
#include "core/nn/linear.hpp"
#include "core/nn/mlp.hpp"
#include "core/nn/rmsnorm.hpp"
#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"
#include "tests/nn/nn_test_util.hpp"

using expt::nn::ParameterStore;
using expt::nn::ParamRole;
namespace test = expt::test;

TEST_CASE("Linear: forward is x W^T, gradients match central differences", "[nn][linear][gradcheck]") {
  const int in = 5, out = 4, rows = 6;
  ParameterStore<double> store;
  expt::nn::Linear<double> linear(store, "proj.weight", in, out, ParamRole::matrix);
  store.allocate();
  test::randomize(store, 1);
  REQUIRE(store.params()[0].shape == std::vector<std::int64_t>{out, in});
  auto x = test::random_normal(static_cast<std::size_t>(rows) * in, 2);
  const auto r = test::random_normal(static_cast<std::size_t>(rows) * out, 3);
  std::vector<double> y(r.size());

  linear.forward(x.data(), y.data(), rows);
  const double* w = store.value(0);
  for (int i = 0; i < rows; ++i)
    for (int o = 0; o < out; ++o) {
      double expected = 0;
      for (int c = 0; c < in; ++c) expected += x[i * in + c] * w[o * in + c];
      REQUIRE(std::abs(y[i * out + o] - expected) < 1e-13);
    }

  auto loss = [&] {
    linear.forward(x.data(), y.data(), rows);
    return test::dot(y.data(), r.data(), y.size());
  };
  auto backward = [&] {
    std::vector<double> dx(x.size());
    linear.forward(x.data(), y.data(), rows);
    linear.backward(x.data(), r.data(), dx.data(), rows, false);
    return dx;
  };
  test::check_gradients(store, loss, backward, &x);

  SECTION("accumulate_dx adds to dx instead of overwriting it") {
    std::vector<double> plain(x.size()), accumulated(x.size(), 2.5);
    linear.backward(x.data(), r.data(), plain.data(), rows, false);
    linear.backward(x.data(), r.data(), accumulated.data(), rows, true);
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(accumulated[i] == Approx(plain[i] + 2.5).epsilon(1e-14));
  }
}

// The fp32 forward product in both of its forms (decision 169): W read in place (NT) or from a
// copy of W^T (NN), whichever this CPU takes in forward(); both are tested here on every machine.
TEST_CASE("Linear<float>: forward and the W^T form match a double reference, the copy is exact, the rule holds",
          "[nn][linear]") {
  const int in = 37, out = 53, rows = 300;
  ParameterStore<float> store;
  expt::nn::Linear<float> linear(store, "proj.weight", in, out, ParamRole::matrix);
  store.allocate();
  const auto w64 = test::random_normal(static_cast<std::size_t>(out) * in, 41);
  const auto x64 = test::random_normal(static_cast<std::size_t>(rows) * in, 42);
  float* w = store.value(0);
  for (std::size_t e = 0; e < w64.size(); ++e) w[e] = static_cast<float>(w64[e]);
  std::vector<float> x(x64.begin(), x64.end());

  std::vector<float> weight_t(static_cast<std::size_t>(in) * out);
  linear.transpose_weight(weight_t.data());
  for (int o = 0; o < out; ++o)
    for (int c = 0; c < in; ++c) REQUIRE(weight_t[static_cast<std::size_t>(c) * out + o] == w[o * in + c]);

  std::vector<float> y(static_cast<std::size_t>(rows) * out), y_t(y.size());
  linear.forward(x.data(), y.data(), rows);
  linear.forward_transposed(x.data(), weight_t.data(), y_t.data(), rows);
  for (int i = 0; i < rows; ++i)
    for (int o = 0; o < out; ++o) {
      double expected = 0, scale = 0;
      for (int c = 0; c < in; ++c) {
        expected += static_cast<double>(x[i * in + c]) * w[o * in + c];
        scale += std::abs(static_cast<double>(x[i * in + c]) * w[o * in + c]);
      }
      const std::size_t k = static_cast<std::size_t>(i) * out + o;
      REQUIRE(std::abs(y[k] - expected) <= 1e-6 * scale);
      REQUIRE(std::abs(y_t[k] - expected) <= 1e-6 * scale);
    }
  // Where this CPU reads W^T, forward() is the W^T form itself, bit for bit.
  if (linear.reads_transposed_weight()) REQUIRE(y == y_t);

  // The rule: fp32 products of weights up to the bound, as the machine decides; never bf16.
  CHECK(linear.reads_transposed_weight() == expt::kernels::forward_reads_transposed_weight());
  store.set_product_precision(expt::kernels::Precision::bf16);
  CHECK_FALSE(linear.reads_transposed_weight());
  ParameterStore<float> big_store;
  expt::nn::Linear<float> big(big_store, "head.weight", 1024, 1025, ParamRole::matrix);
  CHECK_FALSE(big.reads_transposed_weight());  // 1,049,600 elements > kMaxTransposedWeight
}

TEST_CASE("Embedding: rows of the table, gradients match central differences", "[nn][embedding][gradcheck]") {
  const int vocab = 7, dim = 3, rows = 9;
  ParameterStore<double> store;
  expt::nn::Embedding<double> embed(store, "embeddings.weight", vocab, dim);
  store.allocate();
  test::randomize(store, 4);
  REQUIRE(store.params()[0].role == ParamRole::embedding);
  const std::vector<std::int32_t> tokens = {3, 0, 6, 3, 3, 1, 6, 2, 0};  // repeats sum their gradients
  const auto r = test::random_normal(static_cast<std::size_t>(rows) * dim, 5);
  std::vector<double> y(r.size());
  embed.forward(tokens.data(), y.data(), rows);
  for (int i = 0; i < rows; ++i)
    for (int c = 0; c < dim; ++c) REQUIRE(y[i * dim + c] == store.value(0)[tokens[i] * dim + c]);

  auto loss = [&] {
    embed.forward(tokens.data(), y.data(), rows);
    return test::dot(y.data(), r.data(), y.size());
  };
  auto backward = [&] {
    embed.forward(tokens.data(), y.data(), rows);
    embed.backward(tokens.data(), r.data(), rows);
    return std::vector<double>{};
  };
  test::check_gradients(store, loss, backward, nullptr);

  const std::vector<std::int32_t> bad = {1, 7};
  REQUIRE_THROWS_AS(embed.forward(bad.data(), y.data(), 2), std::out_of_range);
}

TEST_CASE("RMSNorm: forward formula, gradients match central differences", "[nn][rmsnorm][gradcheck]") {
  const int dim = 6, rows = 4;
  const double eps = 1e-6;
  ParameterStore<double> store;
  expt::nn::RMSNorm<double> norm(store, "norm.weight", dim, eps);
  store.allocate();
  test::randomize(store, 6);
  REQUIRE(store.params()[0].role == ParamRole::vector);
  auto x = test::random_normal(static_cast<std::size_t>(rows) * dim, 7);
  const auto r = test::random_normal(x.size(), 8);
  std::vector<double> y(x.size());

  norm.forward(x.data(), y.data(), rows);
  for (int i = 0; i < rows; ++i) {
    double ms = 0;
    for (int c = 0; c < dim; ++c) ms += x[i * dim + c] * x[i * dim + c] / dim;
    for (int c = 0; c < dim; ++c)
      REQUIRE(std::abs(y[i * dim + c] - x[i * dim + c] / std::sqrt(ms + eps) * store.value(0)[c]) < 1e-13);
  }

  auto loss = [&] {
    norm.forward(x.data(), y.data(), rows);
    return test::dot(y.data(), r.data(), y.size());
  };
  auto backward = [&] {
    std::vector<double> dx(x.size());
    norm.forward(x.data(), y.data(), rows);
    norm.backward(x.data(), r.data(), dx.data(), rows);
    return dx;
  };
  test::check_gradients(store, loss, backward, &x);
}

namespace {

// The Mlp's forward against y = W_down h(x) computed entry by entry (hidden(x_row, j) gives unit
// j of h for one input row), then its gradients against central differences. x [rows, d].
template <class Hidden>
void check_mlp(expt::nn::Mlp<double>& mlp, ParameterStore<double>& store, int d, int width, int rows,
               std::uint64_t seed, Hidden hidden) {
  auto x = test::random_normal(static_cast<std::size_t>(rows) * d, seed);
  const auto r = test::random_normal(x.size(), seed + 1);
  std::vector<double> y(x.size());
  mlp.forward(x.data(), y.data(), rows);
  const double* wd = store.value(store.params().size() - 1);
  for (int i = 0; i < rows; ++i) {
    std::vector<double> h(width);
    for (int j = 0; j < width; ++j) h[j] = hidden(x.data() + i * d, j);
    for (int o = 0; o < d; ++o) {
      double expected = 0;
      for (int j = 0; j < width; ++j) expected += wd[o * width + j] * h[j];
      REQUIRE(std::abs(y[i * d + o] - expected) < 1e-13);
    }
  }

  auto loss = [&] {
    mlp.forward(x.data(), y.data(), rows);
    return test::dot(y.data(), r.data(), y.size());
  };
  auto backward = [&] {
    std::vector<double> dx(x.size());
    mlp.forward(x.data(), y.data(), rows);
    expt::nn::Workspace<double> ws;
    mlp.backward(x.data(), r.data(), dx.data(), rows, ws);
    return dx;
  };
  test::check_gradients(store, loss, backward, &x);
}

// Row j of the weight w [width, d] applied to one input row.
double unit(const double* w, const double* x_row, int j, int d) {
  double sum = 0;
  for (int c = 0; c < d; ++c) sum += w[j * d + c] * x_row[c];
  return sum;
}

}  // namespace

TEST_CASE("Mlp swiglu: forward formula, gradients match central differences", "[nn][mlp][gradcheck]") {
  const int d = 5, width = 7, rows = 6;
  ParameterStore<double> store;
  expt::nn::Mlp<double> mlp(store, "mlp.", d, width, /*gated=*/true);
  store.allocate();
  test::randomize(store, 9, 0.7);
  REQUIRE(store.params()[0].name == "mlp.gate_proj.weight");
  REQUIRE(store.params()[1].name == "mlp.up_proj.weight");
  REQUIRE(store.params()[2].name == "mlp.down_proj.weight");
  REQUIRE(store.params()[2].shape == std::vector<std::int64_t>{d, width});
  // h = silu(W_gate x) * (W_up x)
  const double *wg = store.value(0), *wu = store.value(1);
  check_mlp(mlp, store, d, width, rows, 10, [&](const double* x_row, int j) {
    const double a = unit(wg, x_row, j, d), u = unit(wu, x_row, j, d);
    return a / (1 + std::exp(-a)) * u;
  });
}

TEST_CASE("Mlp silu: forward formula, gradients match central differences", "[nn][mlp][gradcheck]") {
  const int d = 5, width = 9, rows = 6;
  ParameterStore<double> store;
  expt::nn::Mlp<double> mlp(store, "mlp.", d, width, /*gated=*/false);
  store.allocate();
  test::randomize(store, 29, 0.7);
  REQUIRE(store.params().size() == 2);
  REQUIRE(store.params()[0].name == "mlp.up_proj.weight");
  REQUIRE(store.params()[1].name == "mlp.down_proj.weight");
  REQUIRE(mlp.gate_proj() == nullptr);
  // h = silu(W_up x)
  const double* wu = store.value(0);
  check_mlp(mlp, store, d, width, rows, 30, [&](const double* x_row, int j) {
    const double u = unit(wu, x_row, j, d);
    return u / (1 + std::exp(-u));
  });
}

TEST_CASE("mlp_intermediate_size: swiglu rounds FLA's 2/3 rule to 256, silu takes d_model * hidden_ratio",
          "[nn][mlp]") {
  expt::config::MlpConfig cfg;
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 64) == 256);
  cfg.type = "silu";
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 64) == 256);
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 100) == 400);
  cfg.hidden_ratio = 2.5;
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 64) == 160);
  cfg.intermediate_size = 48;
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 64) == 48);
}

TEST_CASE("CausalSelfAttention: gradients match central differences", "[nn][attention][gradcheck]") {
  const int d = 8, heads = 2, B = 2, L = 5;
  ParameterStore<double> store;
  expt::nn::CausalSelfAttention<double> attn(store, "mixer.", d, heads, 10000.0);
  store.allocate();
  test::randomize(store, 12);
  REQUIRE(store.params().size() == 4);
  REQUIRE(store.params()[0].name == "mixer.q_proj.weight");
  REQUIRE(store.params()[3].name == "mixer.o_proj.weight");
  auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, 13);
  const auto r = test::random_normal(x.size(), 14);
  std::vector<double> y(x.size());
  auto loss = [&] {
    attn.forward(x.data(), y.data(), B, L);
    return test::dot(y.data(), r.data(), y.size());
  };
  auto backward = [&] {
    std::vector<double> dx(x.size());
    attn.forward(x.data(), y.data(), B, L);
    expt::nn::Workspace<double> ws;
    attn.backward(x.data(), r.data(), dx.data(), B, L, ws);
    return dx;
  };
  test::check_gradients(store, loss, backward, &x);
}

TEST_CASE("CausalSelfAttention is causal and sequences are independent", "[nn][attention]") {
  const int d = 8, heads = 4, B = 2, L = 6;
  ParameterStore<double> store;
  expt::nn::CausalSelfAttention<double> attn(store, "mixer.", d, heads, 10000.0);
  store.allocate();
  test::randomize(store, 15);
  auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, 16);
  std::vector<double> y0(x.size()), y1(x.size());
  attn.forward(x.data(), y0.data(), B, L);
  // Perturb sequence 0 at position 3: sequence 0 positions < 3 and all of sequence 1 unchanged.
  for (int c = 0; c < d; ++c) x[3 * d + c] += 0.5;
  attn.forward(x.data(), y1.data(), B, L);
  for (int t = 0; t < L; ++t)
    for (int c = 0; c < d; ++c) {
      if (t < 3) REQUIRE(y1[t * d + c] == y0[t * d + c]);
      REQUIRE(y1[(L + t) * d + c] == y0[(L + t) * d + c]);
    }
  REQUIRE(y1[3 * d] != y0[3 * d]);

  ParameterStore<double> other;
  REQUIRE_THROWS_AS(expt::nn::CausalSelfAttention<double>(other, "a.", 10, 4, 1e4), std::invalid_argument);
  REQUIRE_THROWS_AS(expt::nn::CausalSelfAttention<double>(other, "b.", 12, 4, 1e4), std::invalid_argument);
}

TEST_CASE("Block: gradients match central differences (swiglu, silu and none)", "[nn][block][gradcheck]") {
  for (const char* mlp_type : {"swiglu", "silu", "none"}) {
    INFO("mlp " << mlp_type);
    expt::config::ModelConfig cfg;
    cfg.d_model = 8;
    cfg.mixer.heads = 2;
    cfg.mlp.type = mlp_type;
    cfg.mlp.intermediate_size = 12;
    cfg.norm_eps = 1e-6;
    const int B = 2, L = 4;
    ParameterStore<double> store;
    expt::nn::Block<double> block(store, "blocks.0.", cfg);
    store.allocate();
    test::randomize(store, 17);
    const std::string type = mlp_type;
    REQUIRE(store.params().size() == (type == "swiglu" ? 9u : type == "silu" ? 8u : 5u));
    auto x = test::random_normal(static_cast<std::size_t>(B) * L * cfg.d_model, 18);
    const auto r = test::random_normal(x.size(), 19);
    std::vector<double> y(x.size());
    auto loss = [&] {
      block.forward(x.data(), y.data(), B, L);
      return test::dot(y.data(), r.data(), y.size());
    };
    auto backward = [&] {
      std::vector<double> dx(x.size());
      block.forward(x.data(), y.data(), B, L);
      expt::nn::Workspace<double> ws;
      block.backward(x.data(), r.data(), dx.data(), B, L, ws);
      return dx;
    };
    test::check_gradients(store, loss, backward, &x);
  }
}
