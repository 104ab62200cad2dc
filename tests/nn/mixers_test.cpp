// The recurrent mixers (GLA, DeltaNet, DeltaProduct, Gated DeltaProduct) and their pieces, in fp64:
// central-difference gradients of every parameter and of the input in several configurations;
// DeltaProduct with n_h = 1 equals DeltaNet; GLA with its gate forced to 1 equals plain causal
// linear attention computed by brute force; chunk sizes that do and do not divide the length agree;
// L2 norm and the per-head gated RMSNorm against closed forms (and its fp32 path against fp64 and
// across buffer offsets); initialisation and roles.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/nn/base_conv.hpp"
#include "core/nn/delta_net.hpp"
#include "core/nn/gla.hpp"
#include "core/nn/head_rmsnorm.hpp"
#include "core/nn/l2norm.hpp"
#include "core/nn/mixer.hpp"
#include "tests/nn/nn_test_util.hpp"

using expt::nn::BaseConv;
using expt::nn::DeltaNet;
using expt::nn::DeltaNetOptions;
using expt::nn::GatedLinearAttention;
using expt::nn::GlaOptions;
using expt::nn::Mixer;
using expt::nn::ParameterStore;
using expt::nn::ParamRole;
namespace test = expt::test;

namespace {

double silu(double z) { return z / (1 + std::exp(-z)); }

// check_gradients with a central-difference step of 1e-6: the L2 norm of a short q or k (SiLU of
// a negative projection) makes the loss strongly curved, and the O(eps^2) truncation error of the
// default step 1e-5 reaches 1e-5 relative on q_proj (it scales as eps^2, it is not a bug).
void check_gradients_fine(ParameterStore<double>& store, const std::function<double()>& loss,
                          const std::function<std::vector<double>()>& backward, std::vector<double>* input) {
  test::check_gradients(store, loss, backward, input, 1e-6, 1e-6);
}

// Gradient check of a mixer on y . r with r fixed, w.r.t. every parameter and the input.
void check_mixer_gradients(Mixer<double>& mixer, ParameterStore<double>& store, int d, int B, int L,
                           std::uint64_t seed) {
  auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, seed);
  const auto r = test::random_normal(x.size(), seed + 1);
  std::vector<double> y(x.size());
  auto loss = [&] {
    mixer.forward(x.data(), y.data(), B, L);
    return test::dot(y.data(), r.data(), y.size());
  };
  auto backward = [&] {
    std::vector<double> dx(x.size());
    mixer.forward(x.data(), y.data(), B, L);
    expt::nn::Workspace<double> ws;
    mixer.backward(x.data(), r.data(), dx.data(), B, L, ws);
    return dx;
  };
  check_gradients_fine(store, loss, backward, &x);
}

std::vector<double> run_forward(Mixer<double>& mixer, const std::vector<double>& x, int B, int L) {
  std::vector<double> y(x.size());
  mixer.forward(x.data(), y.data(), B, L);
  return y;
}

DeltaNetOptions delta_options(int n_h, bool product, bool conv, bool out_gate, bool forget, bool neg) {
  DeltaNetOptions o;
  o.d_model = 6;
  o.heads = 2;
  o.key_dim = 3;
  o.value_dim = 4;
  o.householder_steps = n_h;
  o.product_kernel = product;
  o.use_short_conv = conv;
  o.conv_size = 3;
  o.use_output_gate = out_gate;
  o.use_forget_gate = forget;
  o.allow_neg_eigval = neg;
  o.chunk_size = 2;
  o.norm_eps = 1e-6;
  return o;
}

}  // namespace

TEST_CASE("L2 norm: unit output, zero stays zero, backward matches central differences", "[nn][l2norm]") {
  const int dim = 5;
  auto x = test::random_normal(3 * dim, 1);
  for (int i = 0; i < dim; ++i) x[2 * dim + i] = 0;  // an all-zero group
  std::vector<double> y(x.size()), rstd(3);
  expt::nn::l2norm_forward(x.data(), y.data(), rstd.data(), 3, dim, 1e-6);
  for (int g = 0; g < 2; ++g)
    REQUIRE(test::dot(y.data() + g * dim, y.data() + g * dim, dim) == Approx(1).epsilon(1e-6));
  for (int i = 0; i < dim; ++i) REQUIRE(y[2 * dim + i] == 0.0);
  const auto r = test::random_normal(x.size(), 2);
  std::vector<double> dx(x.size());
  expt::nn::l2norm_backward(y.data(), rstd.data(), r.data(), dx.data(), 3, dim);
  auto loss = [&] {
    std::vector<double> yy(x.size()), rr(3);
    expt::nn::l2norm_forward(x.data(), yy.data(), rr.data(), 3, dim, 1e-6);
    return test::dot(yy.data(), r.data(), yy.size());
  };
  const auto numeric = test::central_difference(x.data(), x.size(), loss, 1e-6);
  REQUIRE(test::relative_error(numeric, dx) < 1e-6);
}

TEST_CASE("HeadRMSNorm: closed form and gradients, with and without gate", "[nn][head_rmsnorm][gradcheck]") {
  const int heads = 3, dv = 4, rows = 5;
  for (const bool gated : {false, true}) {
    INFO("gated " << gated);
    ParameterStore<double> store;
    expt::nn::HeadRMSNorm<double> norm(store, "o_norm.weight", heads, dv, 1e-5);
    store.allocate();
    test::randomize(store, 3);
    auto o = test::random_normal(static_cast<std::size_t>(rows) * heads * dv, 4);
    auto z = test::random_normal(o.size(), 5);
    const auto r = test::random_normal(o.size(), 6);
    std::vector<double> y(o.size());
    norm.forward(o.data(), gated ? z.data() : nullptr, y.data(), rows);
    const double* w = store.value(0);
    for (int g = 0; g < rows * heads; ++g) {
      double ms = 0;
      for (int i = 0; i < dv; ++i) ms += o[g * dv + i] * o[g * dv + i] / dv;
      for (int i = 0; i < dv; ++i) {
        const double expect = o[g * dv + i] / std::sqrt(ms + 1e-5) * w[i] * (gated ? silu(z[g * dv + i]) : 1.0);
        REQUIRE(y[g * dv + i] == Approx(expect).epsilon(1e-12));
      }
    }
    std::vector<double> dz(o.size());
    auto loss = [&] {
      norm.forward(o.data(), gated ? z.data() : nullptr, y.data(), rows);
      return test::dot(y.data(), r.data(), y.size());
    };
    auto backward = [&] {
      std::vector<double> d_o(o.size());
      norm.forward(o.data(), gated ? z.data() : nullptr, y.data(), rows);
      norm.backward(o.data(), gated ? z.data() : nullptr, r.data(), d_o.data(), gated ? dz.data() : nullptr, rows);
      return d_o;
    };
    test::check_gradients(store, loss, backward, &o);
    if (gated) {
      const auto numeric = test::central_difference(z.data(), z.size(), loss);
      REQUIRE(test::relative_error(numeric, dz) < 1e-7);
    }
  }
}

TEST_CASE("HeadRMSNorm in fp32: fp64's results, and the same bits at any buffer offset",
          "[nn][head_rmsnorm][determinism]") {
  // The fp32 element loops are vectorised (a vector body and a scalar remainder, whose split
  // depends on head_dim and on the buffers' alignment): head_dim 37 (not a multiple of any vector
  // width) and 32, with and without the gate; forward y and backward d_o, dz, dw against the fp64
  // instance on the same inputs, and bit for bit against themselves with every buffer shifted.
  const int heads = 3, rows = 5;
  for (const int dv : {37, 32})
    for (const bool gated : {false, true}) {
      INFO("head_dim " << dv << ", gated " << gated);
      const std::size_t n = static_cast<std::size_t>(rows) * heads * dv;
      const auto o = test::random_normal(n, 11), z = test::random_normal(n, 12, 3.0), dy = test::random_normal(n, 13);
      const auto w = test::random_normal(static_cast<std::size_t>(dv), 14, 0.5);
      // y, d_o, dz, dw of one forward + backward, with every buffer starting `offset` elements in.
      auto run = [&]<class T>(T, std::size_t offset) {
        ParameterStore<T> store;
        expt::nn::HeadRMSNorm<T> norm(store, "o_norm.weight", heads, dv, 1e-5);
        store.allocate();
        std::copy(w.begin(), w.end(), store.value(0));
        auto at = [offset](const std::vector<double>& x) {
          std::vector<T> y(x.size() + offset);
          std::copy(x.begin(), x.end(), y.begin() + static_cast<std::ptrdiff_t>(offset));
          return y;
        };
        const auto ob = at(o), zb = at(z), dyb = at(dy);
        std::vector<T> y(n + offset), d_o(n + offset), dz(n + offset);
        norm.forward(ob.data() + offset, gated ? zb.data() + offset : nullptr, y.data() + offset, rows);
        norm.backward(ob.data() + offset, gated ? zb.data() + offset : nullptr, dyb.data() + offset,
                      d_o.data() + offset, gated ? dz.data() + offset : nullptr, rows);
        std::vector<std::vector<double>> out;
        for (const std::vector<T>* x : {&y, &d_o, &dz})
          out.emplace_back(x->begin() + static_cast<std::ptrdiff_t>(offset), x->end());
        out.emplace_back(store.grad(0), store.grad(0) + dv);
        return out;
      };
      const auto exact = run(0.0, 0);
      const auto single = run(0.0f, 0);
      for (std::size_t part = 0; part < exact.size(); ++part) {
        INFO("output " << part);
        CHECK(test::relative_error(single[part], exact[part]) < 1e-6);
      }
      for (std::size_t offset = 1; offset < 8; ++offset) {
        const auto shifted = run(0.0f, offset);
        for (std::size_t part = 0; part < single.size(); ++part) {
          INFO("offset " << offset << ", output " << part);
          CHECK(shifted[part] == single[part]);
        }
      }
    }
}

TEST_CASE("DeltaNet / DeltaProduct layer: gradients match central differences", "[nn][deltanet][gradcheck]") {
  struct Case {
    int n_h;
    bool product, conv, out_gate, forget, neg;
  };
  const std::vector<Case> cases = {
      {1, false, true, false, false, false},  // DeltaNet (fla defaults)
      {1, false, false, true, true, true},    // Gated DeltaNet, output gate, beta in (0, 2)
      {1, true, true, true, false, true},     // DeltaProduct n_h = 1
      {2, true, false, false, false, true},   // DeltaProduct n_h = 2 (state-tracking setting)
      {2, true, true, true, true, false},     // Gated DeltaProduct, beta in (0, 1)
      {3, true, true, false, true, true},     // n_h = 3, forget gate
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    INFO("case " << c << ": n_h " << k.n_h << " product " << k.product << " conv " << k.conv << " output gate "
                 << k.out_gate << " forget gate " << k.forget << " neg " << k.neg);
    ParameterStore<double> store;
    DeltaNet<double> layer(store, "mixer.", delta_options(k.n_h, k.product, k.conv, k.out_gate, k.forget, k.neg));
    store.allocate();
    test::randomize(store, 100 + c);
    check_mixer_gradients(layer, store, 6, 2, 5, 200 + c);
  }
}

TEST_CASE("GLA layer: gradients match central differences", "[nn][gla][gradcheck]") {
  for (const bool conv : {false, true})
    for (const bool out_gate : {true, false}) {
      INFO("conv " << conv << " output gate " << out_gate);
      GlaOptions o;
      o.d_model = 6;
      o.heads = 2;
      o.key_dim = 3;
      o.value_dim = 4;
      o.gate_low_rank_dim = 2;
      o.gate_logit_normalizer = conv ? 1.0 : 16.0;
      o.use_short_conv = conv;
      o.conv_size = 3;
      o.use_output_gate = out_gate;
      o.chunk_size = 3;
      o.norm_eps = 1e-6;
      ParameterStore<double> store;
      GatedLinearAttention<double> layer(store, "mixer.", o);
      store.allocate();
      test::randomize(store, 300 + 2 * conv + out_gate);
      check_mixer_gradients(layer, store, 6, 2, 7, 310 + 2 * conv + out_gate);
    }
}

TEST_CASE("DeltaProduct with n_h = 1 equals DeltaNet with the same weights", "[nn][deltanet]") {
  for (const bool gated : {false, true}) {
    INFO("forget gate " << gated);
    expt::config::ModelConfig dn;
    dn.d_model = 8;
    dn.mixer = expt::config::mixer_defaults("deltanet");
    dn.mixer.heads = 2;
    dn.mixer.use_forget_gate = gated;
    dn.mixer.use_output_gate = true;
    dn.mixer.allow_neg_eigval = true;
    dn.mixer.chunk_size = 3;
    expt::config::ModelConfig dp = dn;
    dp.mixer = expt::config::mixer_defaults(gated ? "gated_deltaproduct" : "deltaproduct");
    dp.mixer.heads = 2;
    dp.mixer.num_householder = 1;
    dp.mixer.chunk_size = 4;
    ParameterStore<double> s1, s2;
    auto a = expt::nn::make_mixer(s1, "mixer.", dn);
    auto b = expt::nn::make_mixer(s2, "mixer.", dp);
    s1.allocate();
    s2.allocate();
    REQUIRE(s1.params().size() == s2.params().size());
    for (std::size_t i = 0; i < s1.params().size(); ++i) {
      REQUIRE(s1.params()[i].name == s2.params()[i].name);
      REQUIRE(s1.params()[i].shape == s2.params()[i].shape);
    }
    test::randomize(s1, 7);
    std::copy(s1.values().begin(), s1.values().end(), s2.values().begin());
    const int B = 2, L = 9, d = 8;
    const auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, 8);
    const auto ya = run_forward(*a, x, B, L);
    const auto yb = run_forward(*b, x, B, L);
    REQUIRE(test::relative_error(ya, yb) < 1e-12);
    const auto r = test::random_normal(x.size(), 9);
    std::vector<double> dxa(x.size()), dxb(x.size());
    expt::nn::Workspace<double> ws;
    a->backward(x.data(), r.data(), dxa.data(), B, L, ws);
    b->backward(x.data(), r.data(), dxb.data(), B, L, ws);
    REQUIRE(test::relative_error(dxa, dxb) < 1e-12);
    const std::vector<double> ga(s1.grads().begin(), s1.grads().end()), gb(s2.grads().begin(), s2.grads().end());
    REQUIRE(test::relative_error(ga, gb) < 1e-12);
  }
}

TEST_CASE("GLA with the gate forced to 1 equals plain causal linear attention", "[nn][gla]") {
  GlaOptions o;
  o.d_model = 6;
  o.heads = 2;
  o.key_dim = 3;
  o.value_dim = 2;
  o.gate_low_rank_dim = 2;
  o.use_output_gate = true;
  o.chunk_size = 4;
  o.norm_eps = 1e-6;
  ParameterStore<double> store;
  GatedLinearAttention<double> layer(store, "mixer.", o);
  store.allocate();
  test::randomize(store, 11);
  // logsigmoid(1e4) = -exp(-1e4) = 0 in double: every decay factor is exactly 1.
  double* bias = store.value(store.find("mixer.gk_proj.1.bias"));
  for (int c = 0; c < o.heads * o.key_dim; ++c) bias[c] = 1e4;
  const int B = 2, L = 7, d = o.d_model, H = o.heads, dk = o.key_dim, dv = o.value_dim;
  const auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, 12);
  const auto y = run_forward(layer, x, B, L);

  // Brute force: projections, o_t = s sum_{i<=t} (q_t . k_i) v_i per head, RMSNorm * w * SiLU(r), W_o.
  auto project = [&](const char* name, int out, std::size_t row) {
    const double* w = store.value(store.find(std::string("mixer.") + name));
    std::vector<double> p(out);
    for (int j = 0; j < out; ++j)
      for (int c = 0; c < d; ++c) p[j] += w[j * d + c] * x[row * d + c];
    return p;
  };
  const double* gain = store.value(store.find("mixer.g_norm.weight"));
  const double* wo = store.value(store.find("mixer.o_proj.weight"));
  std::vector<double> expect(x.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t) {
      const std::size_t row = static_cast<std::size_t>(b) * L + t;
      const auto q = project("q_proj.weight", H * dk, row);
      const auto rgate = project("g_proj.weight", H * dv, row);
      std::vector<double> normed(H * dv);
      for (int h = 0; h < H; ++h) {
        std::vector<double> out(dv);
        for (int i = 0; i <= t; ++i) {
          const auto k = project("k_proj.weight", H * dk, static_cast<std::size_t>(b) * L + i);
          const auto v = project("v_proj.weight", H * dv, static_cast<std::size_t>(b) * L + i);
          double score = 0;
          for (int m = 0; m < dk; ++m) score += q[h * dk + m] * k[h * dk + m];
          for (int m = 0; m < dv; ++m) out[m] += score / std::sqrt(double(dk)) * v[h * dv + m];
        }
        double ms = 0;
        for (double v : out) ms += v * v / dv;
        for (int m = 0; m < dv; ++m)
          normed[h * dv + m] = out[m] / std::sqrt(ms + 1e-6) * gain[m] * silu(rgate[h * dv + m]);
      }
      for (int j = 0; j < d; ++j)
        for (int c = 0; c < H * dv; ++c) expect[row * d + j] += wo[j * H * dv + c] * normed[c];
    }
  REQUIRE(test::relative_error(y, expect) < 1e-10);
}

TEST_CASE("Chunk sizes that do and do not divide the length give the same layer output", "[nn][mixer]") {
  const int B = 2, L = 12, d = 8;
  const auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, 13);
  for (const char* type : {"gla", "deltanet", "deltaproduct", "gated_deltaproduct"}) {
    INFO("mixer " << type);
    std::vector<double> reference;
    for (const int chunk : {64, 12, 5, 4, 1}) {
      INFO("chunk " << chunk);
      expt::config::ModelConfig cfg;
      cfg.d_model = d;
      cfg.mixer = expt::config::mixer_defaults(type);
      cfg.mixer.heads = 2;
      cfg.mixer.chunk_size = chunk;
      ParameterStore<double> store;
      auto mixer = expt::nn::make_mixer(store, "mixer.", cfg);
      store.allocate();
      test::randomize(store, 14);
      const auto y = run_forward(*mixer, x, B, L);
      if (reference.empty())
        reference = y;
      else
        REQUIRE(test::relative_error(y, reference) < 1e-12);
    }
  }
}

TEST_CASE("Mixer parameters: names, shapes, roles and init", "[nn][mixer]") {
  expt::config::ModelConfig cfg;
  cfg.d_model = 16;
  cfg.mixer = expt::config::mixer_defaults("gated_deltaproduct");
  cfg.mixer.heads = 2;
  cfg.mixer.num_householder = 3;
  ParameterStore<float> store;
  auto mixer = expt::nn::make_mixer(store, "blocks.0.mixer.", cfg);
  store.allocate();
  const std::vector<std::string> names = {"q_proj.weight",   "k_proj.weight",   "v_proj.weight", "b_proj.weight",
                                          "a_proj.weight",   "A_log",           "dt_bias",       "q_conv1d.weight",
                                          "k_conv1d.weight", "v_conv1d.weight", "g_proj.weight", "o_norm.weight",
                                          "o_proj.weight"};
  REQUIRE(store.params().size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& p = store.params()[i];
    INFO(p.name);
    REQUIRE(p.name == "blocks.0.mixer." + names[i]);
    const bool projection = names[i].find("_proj.") != std::string::npos;
    REQUIRE((p.role == ParamRole::matrix) == projection);
    if (!projection) REQUIRE(p.role == ParamRole::vector);
  }
  // d_k = d_v = 8, n_h = 3: k_proj [3*2*8, 16], b_proj [6, 16], k_conv1d [48, 4].
  REQUIRE(store.params()[1].shape == std::vector<std::int64_t>{48, 16});
  REQUIRE(store.params()[3].shape == std::vector<std::int64_t>{6, 16});
  REQUIRE(store.params()[8].shape == std::vector<std::int64_t>{48, 4});
  REQUIRE(mixer->output_weight_id() == std::optional<std::size_t>(12));

  mixer->init_parameters(5, 0.02);
  const float* a_log = store.value(5);
  const float* dt_bias = store.value(6);
  for (int h = 0; h < 2; ++h) {
    REQUIRE(a_log[h] <= std::log(16.0f) + 1e-6f);
    REQUIRE(std::exp(a_log[h]) > 0.0f);
    const double dt = std::log1p(std::exp(static_cast<double>(dt_bias[h])));  // softplus inverts dt_bias
    REQUIRE(dt >= 1e-3 * (1 - 1e-5));
    REQUIRE(dt <= 1e-1 * (1 + 1e-5));
  }
  const float* conv = store.value(8);
  double sum_sq = 0;
  for (int e = 0; e < 48 * 4; ++e) sum_sq += conv[e] * conv[e];
  REQUIRE(std::sqrt(sum_sq / (48 * 4)) == Approx(0.02).epsilon(0.2));

  expt::config::ModelConfig gla;
  gla.d_model = 16;
  gla.mixer = expt::config::mixer_defaults("gla");
  ParameterStore<float> gstore;
  auto g = expt::nn::make_mixer(gstore, "m.", gla);
  gstore.allocate();
  // expand_k 0.5, expand_v 1, 4 heads: q_proj [8, 16], v_proj [16, 16], gate 16 -> 16 -> 8.
  REQUIRE(gstore.params()[gstore.find("m.q_proj.weight")].shape == std::vector<std::int64_t>{8, 16});
  REQUIRE(gstore.params()[gstore.find("m.v_proj.weight")].shape == std::vector<std::int64_t>{16, 16});
  REQUIRE(gstore.params()[gstore.find("m.gk_proj.0.weight")].shape == std::vector<std::int64_t>{16, 16});
  REQUIRE(gstore.params()[gstore.find("m.gk_proj.1.weight")].shape == std::vector<std::int64_t>{8, 16});
  REQUIRE(gstore.params()[gstore.find("m.gk_proj.1.bias")].role == ParamRole::vector);
  REQUIRE(gstore.params()[gstore.find("m.g_norm.weight")].shape == std::vector<std::int64_t>{4});
  REQUIRE(gstore.params()[gstore.find("m.gk_proj.0.weight")].role == ParamRole::matrix);

  expt::config::ModelConfig bad = gla;
  bad.mixer.heads = 3;  // 8 key channels do not split into 3 heads
  ParameterStore<float> bstore;
  REQUIRE_THROWS_AS(expt::nn::make_mixer(bstore, "m.", bad), std::invalid_argument);
  bad.mixer.type = "mamba";
  REQUIRE_THROWS_AS(expt::nn::make_mixer(bstore, "m.", bad), std::invalid_argument);
  bad.mixer.type = "none";
  REQUIRE(expt::nn::make_mixer(bstore, "m.", bad) == nullptr);
}

TEST_CASE("BaseConv layer: gradients match central differences", "[nn][base_conv][gradcheck]") {
  // Widths 1 (no mixing along time), 3 (Zoology's) and longer than the sequence (taps before the
  // start everywhere); B = 2 so a sequence reading its neighbour would show.
  for (const int width : {1, 3, 7}) {
    INFO("width " << width);
    ParameterStore<double> store;
    BaseConv<double> layer(store, "m.", 6, width);
    store.allocate();
    test::randomize(store, 70 + width);
    check_mixer_gradients(layer, store, 6, 2, 5, 80 + width);
  }
}

TEST_CASE("BaseConv layer: output equals the formula term by term, and its parameters and init", "[nn][base_conv]") {
  const int d = 4, W = 3, B = 2, L = 6;
  ParameterStore<double> store;
  BaseConv<double> layer(store, "blocks.0.mixer.", d, W);
  store.allocate();
  const auto& ps = store.params();
  REQUIRE(ps.size() == 4);
  REQUIRE(ps[0].name == "blocks.0.mixer.projection.weight");
  REQUIRE(ps[0].role == ParamRole::matrix);
  REQUIRE(ps[0].shape == std::vector<std::int64_t>{d, d});
  REQUIRE(ps[1].name == "blocks.0.mixer.projection.bias");
  REQUIRE(ps[2].name == "blocks.0.mixer.conv.weight");
  REQUIRE(ps[2].shape == std::vector<std::int64_t>{d, W});
  REQUIRE(ps[3].name == "blocks.0.mixer.conv.bias");
  for (std::size_t id = 1; id < 4; ++id) REQUIRE(ps[id].role == ParamRole::vector);
  REQUIRE_FALSE(layer.output_weight_id().has_value());

  test::randomize(store, 90);
  const auto x = test::random_normal(static_cast<std::size_t>(B) * L * d, 91);
  const auto y = run_forward(layer, x, B, L);
  const double* Wp = store.value(0);
  const double* bp = store.value(1);
  const double* w = store.value(2);
  const double* bc = store.value(3);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t)
      for (int ch = 0; ch < d; ++ch) {
        const auto at = [&](int tt, int cc) { return x[(static_cast<std::size_t>(b) * L + tt) * d + cc]; };
        double c = bc[ch];
        for (int i = 0; i < W; ++i)
          if (t - (W - 1) + i >= 0) c += w[ch * W + i] * at(t - (W - 1) + i, ch);
        double p = bp[ch];
        for (int j = 0; j < d; ++j) p += Wp[ch * d + j] * at(t, j);
        REQUIRE(y[(static_cast<std::size_t>(b) * L + t) * d + ch] == Approx(c * p + at(t, ch)).epsilon(1e-12));
      }

  // Init: projection bias 0; conv weight and bias U(-1/sqrt(W), 1/sqrt(W)), not all equal.
  layer.init_parameters(7, 0.02);
  for (int ch = 0; ch < d; ++ch) REQUIRE(store.value(1)[ch] == 0.0);
  double lo = 1, hi = -1;
  for (std::size_t id : {std::size_t{2}, std::size_t{3}})
    for (std::size_t e = 0; e < ps[id].size; ++e) {
      lo = std::min(lo, store.value(id)[e]);
      hi = std::max(hi, store.value(id)[e]);
    }
  REQUIRE(lo >= -1 / std::sqrt(3.0));
  REQUIRE(hi <= 1 / std::sqrt(3.0));
  REQUIRE(hi - lo > 0.2);
}
