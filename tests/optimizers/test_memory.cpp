// optimizer_memory (optimizers/optimizer.hpp): every optimizer type's static memory(), computed
// from the parameter shapes without building it, must give exactly the bytes of the state the
// built optimizer registers, so the pre-flight estimate cannot drift from the optimizers. Checked
// on a real model's parameters (embedding, head, every mixer's matrices and vectors) and on the
// layouts that change the state's size (SOAP blocks, merged dims, one-sided; M-FAC blocks; DCT
// ranks above a matrix's smaller side).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/config/type_descriptors.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/optimizer.hpp"

namespace {

using expt::config::OptimizerConfig;

// The parameters of a 2-layer model with `mixer` (registered only: nothing is allocated).
std::vector<expt::nn::ParamInfo> model_params(const std::string& mixer, int d_model) {
  expt::config::ModelConfig model;
  model.d_model = d_model;
  model.mixer = expt::config::mixer_defaults(mixer);
  model.mixer.type = mixer;
  expt::nn::ParameterStore<float> store;
  const expt::nn::Model<float> built(model, 11, store);
  return store.params();
}

// The variants of an optimizer type whose state size differs.
std::vector<OptimizerConfig> variants(const std::string& type) {
  const OptimizerConfig base = expt::config::optimizer_defaults(type);
  std::vector<OptimizerConfig> out = {base};
  OptimizerConfig c = base;
  if (type == "soap") {
    c.block_size = 24;  // cuts every axis longer than 24 (32: 24 + 8; the MLP's 256) into blocks
    out.push_back(c);
    c = base;
    c.merge_dims = true;
    c.max_precond_dim = 2048;  // small matrices merge into one axis
    out.push_back(c);
    c = base;
    c.one_sided = true;
    c.max_precond_dim = 40;  // the MLP's 256-wide axes go unpreconditioned
    out.push_back(c);
  } else if (type == "mfac") {
    c.window = 3;
    c.block_size = 1000;  // several blocks, the last one shorter
    out.push_back(c);
  } else if (type == "dct_adamw") {
    c.rank = 100;  // larger than every matrix's smaller side
    out.push_back(c);
  }
  return out;
}

}  // namespace

TEST_CASE("each optimizer's memory() state bytes equal the state the built optimizer registers",
          "[optimizers][memory]") {
  int checked = 0;
  for (const auto& type : expt::config::optimizer_types())
    for (const std::string mixer : {"attention", "gla", "gated_deltaproduct"})
      for (const OptimizerConfig& cfg : variants(type.name)) {
        INFO(type.name << " on " << mixer << ", block_size " << cfg.block_size << ", merge_dims " << cfg.merge_dims
                       << ", max_precond_dim " << cfg.max_precond_dim << ", rank " << cfg.rank);
        const auto params = model_params(mixer, 32);
        const expt::optim::OptimizerMemory predicted = expt::optim::optimizer_memory(cfg, params);
        const auto built = expt::optim::make_optimizer(cfg, params);
        CHECK(predicted.state == built->registered_state_bytes());
        CHECK(predicted.scratch >= 0);
        ++checked;
      }
  CHECK(checked >= 5 * 3);
}

TEST_CASE("optimizer_memory grows with the model and orders the optimizers as their state does",
          "[optimizers][memory]") {
  const auto small = model_params("gla", 32), large = model_params("gla", 64);
  double n = 0;
  for (const auto& p : large) n += static_cast<double>(p.size);
  for (const auto& type : expt::config::optimizer_types()) {
    INFO(type.name);
    const auto cfg = expt::config::optimizer_defaults(type.name);
    CHECK(expt::optim::optimizer_memory(cfg, large).total() > expt::optim::optimizer_memory(cfg, small).total());
  }
  // AdamW: two float moments per parameter and one counter per tensor.
  const double adamw = expt::optim::optimizer_memory(expt::config::optimizer_defaults("adamw"), large).state;
  CHECK(adamw == 8.0 * n + 8.0 * static_cast<double>(large.size()));
}
