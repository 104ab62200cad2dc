// The full model: gradient checks w.r.t. every parameter (2 layers; tied/untied x swiglu/none),
// float against double forward, initialisation statistics, parameter names/roles/counts, the MLP
// width rule, FLOP count, buffer reuse.
#include "core/nn/model.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/nn/mlp.hpp"
#include "core/util/random.hpp"
#include "tests/nn/nn_test_util.hpp"

using expt::nn::Model;
using expt::nn::ParameterStore;
using expt::nn::ParamRole;
namespace test = expt::test;

namespace {

expt::config::ModelConfig small_config(bool tie, const std::string& mlp) {
  expt::config::ModelConfig cfg;
  cfg.d_model = 8;
  cfg.n_layers = 2;
  cfg.mixer.heads = 2;
  cfg.mlp.type = mlp;
  cfg.mlp.intermediate_size = 12;
  cfg.tie_embeddings = tie;
  return cfg;
}

std::vector<std::int32_t> tokens(std::size_t n, int vocab, std::uint64_t seed) {
  std::vector<std::int32_t> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::int32_t>(expt::rng::uniform_int(seed, expt::rng::Stream::test, 0, 0, i, vocab));
  return out;
}

// V*d + n_layers * (2 norms + 4 attention projections + 3 MLP projections) + final norm + head
std::int64_t expected_params(const expt::config::ModelConfig& cfg, int vocab, int width, bool count_embed) {
  const std::int64_t d = cfg.d_model;
  const bool mlp = cfg.mlp.type == "swiglu";
  const std::int64_t block = d + 4 * d * d + (mlp ? d + 3 * d * width : 0);
  std::int64_t n = cfg.n_layers * block + d;
  if (count_embed) n += vocab * d + (cfg.tie_embeddings ? 0 : vocab * d);
  return n;
}

}  // namespace

TEST_CASE("Model: gradients of every parameter match central differences", "[nn][model][gradcheck]") {
  const int vocab = 6, B = 2, L = 4;
  for (const bool tie : {false, true})
    for (const char* mlp : {"swiglu", "none"}) {
      INFO("tie " << tie << " mlp " << mlp);
      const auto cfg = small_config(tie, mlp);
      ParameterStore<double> store;
      Model<double> model(cfg, vocab, store);
      store.allocate();
      test::randomize(store, 21);
      const auto inputs = tokens(static_cast<std::size_t>(B) * L, vocab, 22);
      const auto r = test::random_normal(static_cast<std::size_t>(B) * L * vocab, 23);
      auto loss = [&] { return test::dot(model.forward(inputs.data(), B, L), r.data(), r.size()); };
      auto backward = [&] {
        model.forward(inputs.data(), B, L);
        model.backward(r.data());
        return std::vector<double>{};
      };
      test::check_gradients(store, loss, backward, nullptr);
    }
}

TEST_CASE("Model: backward adds into the gradient buffer", "[nn][model]") {
  const auto cfg = small_config(true, "swiglu");
  ParameterStore<double> store;
  Model<double> model(cfg, 5, store);
  store.allocate();
  test::randomize(store, 24);
  const auto inputs = tokens(6, 5, 25);
  const auto r = test::random_normal(30, 26);
  model.forward(inputs.data(), 2, 3);
  model.backward(r.data());
  const std::vector<double> once(store.grads().begin(), store.grads().end());
  model.backward(r.data());
  for (std::size_t i = 0; i < once.size(); ++i) REQUIRE(store.grads()[i] == Approx(2 * once[i]).epsilon(1e-12));
}

TEST_CASE("Model: float forward equals double forward for the same init", "[nn][model]") {
  expt::config::ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layers = 2;
  cfg.mixer.heads = 4;
  cfg.mlp.intermediate_size = 24;
  cfg.init_std = 0.3;  // large enough that every layer matters
  const int vocab = 10, B = 3, L = 8;
  ParameterStore<float> store_f;
  ParameterStore<double> store_d;
  Model<float> model_f(cfg, vocab, store_f);
  Model<double> model_d(cfg, vocab, store_d);
  store_f.allocate();
  store_d.allocate();
  model_f.init_parameters(7);
  model_d.init_parameters(7);
  for (std::size_t i = 0; i < store_d.size(); ++i)
    REQUIRE(store_f.values()[i] == static_cast<float>(store_d.values()[i]));
  const auto inputs = tokens(static_cast<std::size_t>(B) * L, vocab, 27);
  const float* lf = model_f.forward(inputs.data(), B, L);
  const double* ld = model_d.forward(inputs.data(), B, L);
  double max_logit = 0, max_diff = 0;
  for (int i = 0; i < B * L * vocab; ++i) {
    max_logit = std::max(max_logit, std::abs(ld[i]));
    max_diff = std::max(max_diff, std::abs(static_cast<double>(lf[i]) - ld[i]));
  }
  REQUIRE(max_logit > 0.1);
  REQUIRE(max_diff < 1e-4 * max_logit);
}

TEST_CASE("Model: parameter names, shapes, roles and order", "[nn][model]") {
  auto cfg = small_config(false, "swiglu");
  cfg.n_layers = 1;
  ParameterStore<float> store;
  Model<float> model(cfg, 11, store);
  const std::vector<std::string> names = {"embeddings.weight",
                                          "blocks.0.attn_norm.weight",
                                          "blocks.0.mixer.q_proj.weight",
                                          "blocks.0.mixer.k_proj.weight",
                                          "blocks.0.mixer.v_proj.weight",
                                          "blocks.0.mixer.o_proj.weight",
                                          "blocks.0.mlp_norm.weight",
                                          "blocks.0.mlp.gate_proj.weight",
                                          "blocks.0.mlp.up_proj.weight",
                                          "blocks.0.mlp.down_proj.weight",
                                          "norm.weight",
                                          "lm_head.weight"};
  REQUIRE(store.params().size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& p = store.params()[i];
    REQUIRE(p.name == names[i]);
    const ParamRole role = i == 0                                     ? ParamRole::embedding
                           : i == names.size() - 1                    ? ParamRole::head
                           : p.name.find("norm") != std::string::npos ? ParamRole::vector
                                                                      : ParamRole::matrix;
    REQUIRE(p.role == role);
  }
  REQUIRE(store.params()[0].shape == std::vector<std::int64_t>{11, 8});
  REQUIRE(store.params()[7].shape == std::vector<std::int64_t>{12, 8});
  REQUIRE(store.params()[9].shape == std::vector<std::int64_t>{8, 12});
  REQUIRE(store.params()[11].shape == std::vector<std::int64_t>{11, 8});

  ParameterStore<float> tied_store;
  cfg.tie_embeddings = true;
  Model<float> tied(cfg, 11, tied_store);
  REQUIRE(tied_store.params().size() == names.size() - 1);
  REQUIRE_THROWS_AS(tied_store.find("lm_head.weight"), std::out_of_range);
}

TEST_CASE("Model: parameter counts against the hand formula", "[nn][model]") {
  for (const bool tie : {false, true})
    for (const char* mlp : {"swiglu", "none"})
      for (const int d : {16, 512}) {
        INFO("tie " << tie << " mlp " << mlp << " d " << d);
        expt::config::ModelConfig cfg;
        cfg.d_model = d;
        cfg.n_layers = 3;
        cfg.mlp.type = mlp;
        cfg.tie_embeddings = tie;
        const int vocab = 37;
        ParameterStore<float> store;
        Model<float> model(cfg, vocab, store);
        // FLA rule: int(16*8/3) = 42 -> 256; int(512*8/3) = 1365 -> 6*256 = 1536
        const int width = d == 16 ? 256 : 1536;
        REQUIRE(model.n_params() == expected_params(cfg, vocab, width, true));
        REQUIRE(model.n_params_nonembed() == expected_params(cfg, vocab, width, false));
        REQUIRE(model.n_params() == static_cast<std::int64_t>(store.size()));
        REQUIRE(model.vocab_size() == vocab);
      }
}

TEST_CASE("MLP width rule of docs/layers.md", "[nn][mlp]") {
  expt::config::MlpConfig cfg;
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 64) == 256);
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 128) == 512);
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 256) == 768);
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 1024) == 2816);
  cfg.intermediate_size = 100;
  REQUIRE(expt::nn::mlp_intermediate_size(cfg, 1024) == 100);
}

TEST_CASE("Model: initialisation statistics and determinism", "[nn][model][init]") {
  expt::config::ModelConfig cfg;
  cfg.d_model = 64;
  cfg.n_layers = 2;
  cfg.init_std = 0.02;
  const int vocab = 50;
  ParameterStore<float> a, b, c;
  Model<float> ma(cfg, vocab, a), mb(cfg, vocab, b), mc(cfg, vocab, c);
  a.allocate();
  b.allocate();
  c.allocate();
  ma.init_parameters(1234);
  mb.init_parameters(1234);
  mc.init_parameters(1235);

  for (std::size_t id = 0; id < a.params().size(); ++id) {
    const auto& p = a.params()[id];
    INFO(p.name);
    const float* w = a.value(id);
    if (p.role == ParamRole::vector) {
      for (std::size_t e = 0; e < p.size; ++e) REQUIRE(w[e] == 1.0f);
      continue;
    }
    double mean = 0, sq = 0;
    for (std::size_t e = 0; e < p.size; ++e) mean += w[e];
    mean /= static_cast<double>(p.size);
    for (std::size_t e = 0; e < p.size; ++e) sq += (w[e] - mean) * (w[e] - mean);
    const double sd = std::sqrt(sq / static_cast<double>(p.size - 1));
    const double n = static_cast<double>(p.size);
    REQUIRE(std::abs(mean) < 5 * cfg.init_std / std::sqrt(n));
    REQUIRE(std::abs(sd / cfg.init_std - 1) < 5 / std::sqrt(2 * n));
    // A pure function of (seed, parameter index, element).
    REQUIRE(w[5] == static_cast<float>(cfg.init_std * expt::rng::normal(1234, expt::rng::Stream::init, id, 0, 5)));
  }
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    REQUIRE(a.values()[i] == b.values()[i]);
    differ += a.values()[i] != c.values()[i] ? 1 : 0;
  }
  REQUIRE(differ > a.size() / 2);  // every weight differs for another seed; gains are 1 in both
}

TEST_CASE("Model: rescale init divides o_proj and down_proj by sqrt(2 n_layers)", "[nn][model][init]") {
  expt::config::ModelConfig cfg;
  cfg.d_model = 32;
  cfg.n_layers = 4;
  ParameterStore<double> plain_store, rescaled_store;
  Model<double> plain(cfg, 20, plain_store);
  cfg.init = "rescale";
  Model<double> rescaled(cfg, 20, rescaled_store);
  plain_store.allocate();
  rescaled_store.allocate();
  plain.init_parameters(9);
  rescaled.init_parameters(9);
  const double factor = 1.0 / std::sqrt(8.0);
  for (std::size_t id = 0; id < plain_store.params().size(); ++id) {
    const auto& name = plain_store.params()[id].name;
    INFO(name);
    const bool scaled = name.find("o_proj") != std::string::npos || name.find("down_proj") != std::string::npos;
    for (std::size_t e = 0; e < plain_store.params()[id].size; ++e)
      REQUIRE(rescaled_store.value(id)[e] == Approx(plain_store.value(id)[e] * (scaled ? factor : 1.0)).epsilon(1e-15));
  }

  cfg.init = "xavier";
  ParameterStore<double> bad;
  REQUIRE_THROWS_AS(Model<double>(cfg, 20, bad), std::invalid_argument);
}

TEST_CASE("Model: configuration errors are reported", "[nn][model]") {
  expt::config::ModelConfig cfg;
  cfg.mixer.type = "gla_unknown";
  ParameterStore<float> s1;
  REQUIRE_THROWS_AS(Model<float>(cfg, 10, s1), std::invalid_argument);
  cfg = {};
  cfg.mlp.type = "relu";
  ParameterStore<float> s2;
  REQUIRE_THROWS_AS(Model<float>(cfg, 10, s2), std::invalid_argument);
  cfg = {};
  cfg.mixer.heads = 3;  // 64 % 3 != 0
  ParameterStore<float> s3;
  REQUIRE_THROWS_AS(Model<float>(cfg, 10, s3), std::invalid_argument);
}

TEST_CASE("Model: FLOPs per token and buffer reuse", "[nn][model]") {
  const auto cfg = small_config(false, "swiglu");
  const int vocab = 6;
  ParameterStore<float> store;
  Model<float> model(cfg, vocab, store);
  store.allocate();
  model.init_parameters(3);
  const auto big = tokens(4 * 6, vocab, 28);
  const float* first = model.forward(big.data(), 4, 6);
  // d = 8, I = 12, V = 6, 2 layers, L = 6:
  //   6 * (non-embedding parameters + head V*d) + causal attention 6 * n_layers * d * (L + 1)
  const double per_block = 2 * 8 + 4 * 8 * 8 + 3 * 8 * 12;  // two gains, q/k/v/o, gate/up/down
  const double nonembed = 2 * per_block + 8;                // + final norm gain
  REQUIRE(model.flops_per_token() == Approx(6 * (nonembed + 6 * 8) + 6.0 * 2 * 8 * 7));
  const float* smaller = model.forward(big.data(), 2, 5);
  const float* again = model.forward(big.data(), 4, 6);
  REQUIRE(smaller == first);
  REQUIRE(again == first);
}
