#include "optimizers/registry.hpp"

#include <stdexcept>

#include "core/config/type_descriptors.hpp"
#include "core/util/allocation.hpp"
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

namespace {

const config::OptimizerType& checked_type(const config::OptimizerConfig& cfg) {
  const config::OptimizerType* type = config::find_optimizer_type(cfg.type);
  if (type == nullptr) {
    std::string known;
    for (const auto& name : known_optimizer_types()) known += (known.empty() ? "" : ", ") + name;
    throw std::invalid_argument("unknown optimizer type '" + cfg.type + "' (known: " + known + ")");
  }
  return *type;
}

std::unique_ptr<Optimizer> build(const config::OptimizerType& type, const config::OptimizerConfig& cfg,
                                 const std::vector<nn::ParamInfo>& params) {
  // No default: a kind without a case here does not compile (-Wswitch).
  switch (type.kind) {
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

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& cfg,
                                          const std::vector<nn::ParamInfo>& params) {
  const config::OptimizerType& type = checked_type(cfg);
  return util::allocating(
      "optimizer", [&] { return "the " + cfg.type + " optimizer's state and scratch"; },
      [&] { return optimizer_memory(cfg, params).total(); }, [&] { return build(type, cfg, params); });
}

OptimizerMemory optimizer_memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) {
  switch (checked_type(cfg).kind) {
    case config::OptimizerKind::adamw:
      return AdamW::memory(params);
    case config::OptimizerKind::muon:
      return Muon::memory(cfg, params);
    case config::OptimizerKind::soap:
      return Soap::memory(cfg, params);
    case config::OptimizerKind::mfac:
      return MFac::memory(cfg, params);
    case config::OptimizerKind::dct_adamw:
      return DctAdamW::memory(cfg, params);
  }
  throw std::logic_error("optimizer_memory: unhandled optimizer kind");
}

}  // namespace expt::optim
