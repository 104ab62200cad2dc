#include "optimizers/hybrid_optimizer.hpp"

namespace expt::optim {

HybridOptimizer::HybridOptimizer(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
                                 const std::string& main_group)
    : params_(params),
      routing_(route_hybrid(cfg, params, main_group)),
      shard_(cfg.shard),
      adam_(std::make_unique<AdamW>(cfg, routing_.adam_infos, routing_.adam_rules)) {
  groups_ = routing_.groups;
  adam_refs_.resize(routing_.adam_params.size());
  add_part_state("adamw", *adam_);
}

void HybridOptimizer::set_communicator(comm::Communicator* comm) {
  ownership_.assign(comm, shard_, matrix_costs());
  on_ownership();
}

void HybridOptimizer::step(std::span<const ParamRef> params, std::int64_t step, double lr) {
  check_param_refs(name(), params, params_);
  const ParamGroup& group = routing_.groups[routing_.main_group];
  const double lr_main = lr * group.lr_scale;
  const float decay = static_cast<float>(1.0 - lr_main * group.weight_decay);
  begin_step(lr_main);
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k)
    if (ownership_.owns(k)) update_matrix(k, params[routing_.main_params[k]], lr_main, decay);
  if (ownership_.sharded())
    for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
      const std::size_t i = routing_.main_params[k];
      ownership_.share(k, std::span<float>(params[i].value, params_[i].size));
    }
  for (std::size_t k = 0; k < routing_.adam_params.size(); ++k) adam_refs_[k] = params[routing_.adam_params[k]];
  adam_->step(adam_refs_, step, lr);
}

}  // namespace expt::optim
