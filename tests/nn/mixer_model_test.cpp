// A 2-layer model of every mixer type: central-difference gradients of every parameter, and the
// `none` mixer (an MLP-only block) having no mixer parameters; Zoology's hybrid (BaseConv in block
// 0, GLA in block 1, model.hybrid_layers): per-layer parameters and gradients.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/nn/model.hpp"
#include "core/util/random.hpp"
#include "tests/nn/nn_test_util.hpp"

using expt::nn::Model;
using expt::nn::ParameterStore;
namespace test = expt::test;

namespace {

// Gradient check of every parameter on loss = logits . r, for B sequences of L random tokens
// (seed) and a fixed random r (seed + 1). Step 1e-6: the L2 norm of short q / k vectors curves the
// loss (see mixers_test.cpp).
void check_model_gradients(Model<double>& model, ParameterStore<double>& store, int vocab, int B, int L,
                           std::uint64_t seed) {
  std::vector<std::int32_t> inputs(static_cast<std::size_t>(B) * L);
  for (std::size_t i = 0; i < inputs.size(); ++i)
    inputs[i] = static_cast<std::int32_t>(expt::rng::uniform_int(seed, expt::rng::Stream::test, 0, 0, i, vocab));
  const auto r = test::random_normal(static_cast<std::size_t>(B) * L * vocab, seed + 1);
  auto loss = [&] { return test::dot(model.forward(inputs.data(), B, L), r.data(), r.size()); };
  auto backward = [&] {
    model.forward(inputs.data(), B, L);
    model.backward(r.data());
    return std::vector<double>{};
  };
  test::check_gradients(store, loss, backward, nullptr, 1e-6, 1e-6);
}

}  // namespace

TEST_CASE("Model of every mixer type: gradients match central differences", "[nn][model][mixer][gradcheck]") {
  const int vocab = 5, B = 2, L = 5;
  for (const char* type : {"attention", "gla", "deltanet", "deltaproduct", "gated_deltaproduct", "base_conv", "none"}) {
    INFO("mixer " << type);
    expt::config::ModelConfig cfg;
    cfg.d_model = 8;
    cfg.n_layers = 2;
    cfg.mixer = expt::config::mixer_defaults(type);
    cfg.mixer.heads = 2;
    cfg.mixer.chunk_size = 3;
    cfg.mixer.gate_logit_normalizer = 1.0;
    cfg.mlp.intermediate_size = 6;
    ParameterStore<double> store;
    Model<double> model(cfg, vocab, store);
    store.allocate();
    test::randomize(store, 40);
    bool has_mixer_param = false;
    for (const auto& p : store.params()) has_mixer_param |= p.name.find(".mixer.") != std::string::npos;
    REQUIRE(has_mixer_param == (std::string(type) != "none"));
    check_model_gradients(model, store, vocab, B, L, 41);
  }
}

TEST_CASE("Hybrid model: BaseConv in block 0, GLA in block 1, gradients match", "[nn][model][mixer][gradcheck]") {
  const int vocab = 5, B = 2, L = 5;
  expt::config::ModelConfig cfg;
  cfg.d_model = 8;
  cfg.n_layers = 2;
  cfg.mixer = expt::config::mixer_defaults("gla");
  cfg.mixer.heads = 2;
  cfg.mixer.chunk_size = 3;
  cfg.mixer.gate_logit_normalizer = 1.0;
  cfg.hybrid_mixer = expt::config::mixer_defaults("base_conv");
  cfg.hybrid_layers = {0};
  cfg.mlp.type = "none";
  cfg.tie_embeddings = true;
  ParameterStore<double> store;
  Model<double> model(cfg, vocab, store);
  store.allocate();
  // Block 0 holds only BaseConv's parameters (width 3), block 1 only GLA's.
  REQUIRE(store.params()[store.find("blocks.0.mixer.conv.weight")].shape == std::vector<std::int64_t>{8, 3});
  REQUIRE(store.params()[store.find("blocks.0.mixer.projection.weight")].shape == std::vector<std::int64_t>{8, 8});
  REQUIRE_NOTHROW(store.find("blocks.1.mixer.q_proj.weight"));
  REQUIRE_THROWS(store.find("blocks.0.mixer.q_proj.weight"));
  REQUIRE_THROWS(store.find("blocks.1.mixer.conv.weight"));
  test::randomize(store, 50);
  check_model_gradients(model, store, vocab, B, L, 51);
}
