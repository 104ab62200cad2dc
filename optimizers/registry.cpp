#include "optimizers/registry.hpp"

#include <stdexcept>

#include "core/config/type_descriptors.hpp"
#include "optimizers/adamw.hpp"
#include "optimizers/dct_adamw.hpp"
#include "optimizers/mfac.hpp"
#include "optimizers/muon.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/soap.hpp"

namespace expt::optim {

std::vector<std::string> known_optimizer_types() {
  std::vector<std::string> names;
  for (const config::OptimizerType& t : config::optimizer_types()) names.push_back(t.name);
  return names;
}

std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& cfg,
                                          const std::vector<nn::ParamInfo>& params) {
  const config::OptimizerType* type = config::find_optimizer_type(cfg.type);
  if (type == nullptr) {
    std::string known;
    for (const auto& name : known_optimizer_types()) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("unknown optimizer type '" + cfg.type + "' (known: " + known + ")");
  }
  // No default: a kind without a case here does not compile (-Wswitch).
  switch (type->kind) {
    case config::OptimizerKind::adamw:
      return std::make_unique<AdamW>(cfg, params);
    case config::OptimizerKind::muon:
      return std::make_unique<Muon>(cfg, params);
    case config::OptimizerKind::soap:
      return std::make_unique<Soap>(cfg, params);
    case config::OptimizerKind::mfac:
      return std::make_unique<MFac>(cfg, params);
    case config::OptimizerKind::dct_adamw:
      return std::make_unique<DctAdamW>(cfg, params);
  }
  throw std::logic_error("make_optimizer: unhandled optimizer kind");
}

}  // namespace expt::optim
