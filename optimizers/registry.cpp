#include "optimizers/registry.hpp"

#include <stdexcept>
#include <string_view>
#include <utility>

#include "optimizers/adamw.hpp"
#include "optimizers/dct_adamw.hpp"
#include "optimizers/mfac.hpp"
#include "optimizers/muon.hpp"
#include "optimizers/soap.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::optim {

namespace {

using Factory = std::unique_ptr<Optimizer> (*)(const config::OptimizerConfig&, const std::vector<nn::ParamInfo>&);

template <class OptimizerType>
std::unique_ptr<Optimizer> construct(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) {
  return std::make_unique<OptimizerType>(cfg, params);
}

// One row per optimizer: the config name and its factory.
constexpr std::pair<std::string_view, Factory> kOptimizers[] = {
    {"adamw", &construct<AdamW>},
    {"muon", &construct<Muon>},
    {"soap", &construct<Soap>},
    {"mfac", &construct<MFac>},
    {"dct_adamw", &construct<DctAdamW>},
};

}  // namespace

std::vector<std::string> known_optimizer_types() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : kOptimizers) names.emplace_back(name);
  return names;
}

std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& cfg,
                                          const std::vector<nn::ParamInfo>& params) {
  for (const auto& [name, factory] : kOptimizers)
    if (cfg.type == name) return factory(cfg, params);
  std::string known;
  for (const auto& name : known_optimizer_types()) known += (known.empty() ? "" : ", ") + name;
  throw std::invalid_argument("unknown optimizer type '" + cfg.type + "' (known: " + known + ")");
}

}  // namespace expt::optim
