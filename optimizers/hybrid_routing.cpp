#include "optimizers/hybrid_routing.hpp"

#include <stdexcept>

namespace expt::optim {

HybridRouting route_hybrid(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
                           const std::string& main_group) {
  using nn::ParamRole;
  HybridRouting routing;
  const std::vector<std::string>& patterns = cfg.adam_patterns;
  for (std::size_t k = 0; k < patterns.size(); ++k)
    routing.rules.push_back(GroupRule{"adam_pattern_" + std::to_string(k),
                                      {ParamRole::matrix},
                                      patterns[k],
                                      cfg.adam_lr_ratio,
                                      cfg.adam_weight_decay});
  routing.main_group = routing.rules.size();
  routing.rules.push_back(GroupRule{main_group, {ParamRole::matrix}, "", 1.0, cfg.weight_decay});
  GroupRule decay{"adam_decay", {ParamRole::head}, "", cfg.adam_lr_ratio, cfg.adam_weight_decay};
  GroupRule no_decay{"adam_no_decay", {ParamRole::vector}, "", cfg.adam_lr_ratio, 0.0};
  (cfg.decay_embeddings ? decay : no_decay).roles.push_back(ParamRole::embedding);
  routing.rules.push_back(decay);
  routing.rules.push_back(no_decay);

  routing.groups = build_param_groups(routing.rules, params);
  routing.main_params = routing.groups[routing.main_group].params;
  for (std::size_t i : routing.main_params)
    if (params[i].shape.size() != 2)
      throw std::invalid_argument(main_group + ": parameter '" + params[i].name + "' has role matrix but is not 2-D");
  const auto group_of = group_of_params(routing.groups, params.size());
  for (std::size_t i = 0; i < params.size(); ++i)
    if (group_of[i] != routing.main_group) {
      routing.adam_params.push_back(i);
      routing.adam_infos.push_back(params[i]);
    }
  for (std::size_t r = 0; r < routing.rules.size(); ++r)
    if (r != routing.main_group) routing.adam_rules.push_back(routing.rules[r]);
  return routing;
}

}  // namespace expt::optim
