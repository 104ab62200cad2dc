// Optimizer: one `step` over the model's parameters, state that serializes, parameter groups
// chosen by rules (role and name pattern), in the spirit of torch.optim.
//
// Conventions (docs/optimizers.md): gradients are already averaged over the global batch and
// clipped; `lr` is the scheduled learning rate of this step; 2-D weights are out x in, row-major.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/util/state_dict.hpp"

namespace expt::comm {
class Communicator;
}

namespace expt::optim {

// A view of one parameter tensor and its gradient.
struct ParamRef {
  const nn::ParamInfo* info;  // name, shape, role
  float* value;
  const float* grad;
  std::size_t size() const { return info->size; }
};

// Per-parameter settings resolved from the group rules.
struct ParamGroup {
  std::string name;       // e.g. "decay", "no_decay"
  double lr_scale = 1.0;  // multiplies the scheduled lr
  double weight_decay = 0.0;
  std::vector<std::size_t> params;  // indices into the ParamRef list
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // Applies one update. `step` counts from 1 (the first update); lr is after the schedule.
  virtual void step(std::span<const ParamRef> params, std::int64_t step, double lr) = 0;
  // Resumable state: everything step() needs to continue bit-exactly.
  virtual StateDict state() const = 0;
  virtual void load_state(const StateDict& state) = 0;
  // The data-parallel ranks of the trial, for optimizers that split their work over them (Muon,
  // docs/optimizers.md "Distributed"); the others ignore it. Every rank must call step() with the
  // same (reduced) gradients. nullptr or a group of one: no splitting.
  virtual void set_communicator(comm::Communicator* comm) { (void)comm; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

 protected:
  std::vector<ParamGroup> groups_;
};

// Builds the optimizer named by cfg.type for the given parameters (registry in registry.cpp).
std::unique_ptr<Optimizer> make_optimizer(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

// Collects ParamRefs for every parameter of a store, in store order.
std::vector<ParamRef> param_refs(nn::ParameterStore<float>& store);

}  // namespace expt::optim
