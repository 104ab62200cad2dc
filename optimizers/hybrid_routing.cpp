#include "optimizers/hybrid_routing.hpp"

#include <stdexcept>

namespace expt::optim {

std::vector<std::string> split_patterns(const std::string& list) {
  std::vector<std::string> patterns;
  std::size_t start = 0;
  while (start < list.size()) {
    const std::size_t comma = list.find(',', start);
    const std::size_t end = comma == std::string::npos ? list.size() : comma;
    if (end > start) patterns.push_back(list.substr(start, end - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return patterns;
}

HybridRouting route_hybrid(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
                           const std::string& main_group) {
  using nn::ParamRole;
  HybridRouting routing;
  const auto patterns = split_patterns(cfg.adam_patterns);
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

void check_param_refs(const std::string& optimizer, std::span<const ParamRef> params,
                      const std::vector<nn::ParamInfo>& expected) {
  if (params.size() != expected.size())
    throw std::invalid_argument(optimizer + ": step got " + std::to_string(params.size()) + " parameters, built for " +
                                std::to_string(expected.size()));
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].info->name != expected[i].name || params[i].size() != expected[i].size)
      throw std::invalid_argument(optimizer + ": parameter " + std::to_string(i) + " is '" + params[i].info->name +
                                  "' (" + std::to_string(params[i].size()) +
                                  " elements), the optimizer was built for '" + expected[i].name + "' (" +
                                  std::to_string(expected[i].size) + " elements)");
}

}  // namespace expt::optim
