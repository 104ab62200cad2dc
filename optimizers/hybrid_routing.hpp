// Routing of the hybrid optimizers (Muon, DCT-AdamW; docs/optimizers.md "Routing"): hidden matrices
// go to the main optimizer, everything else to an internal AdamW. The rules, in first-match order:
//
//   adam_pattern_<k>  role matrix, name matches the k-th glob of cfg.adam_patterns
//                     -> AdamW, lr_scale adam_lr_ratio, weight decay adam_weight_decay
//   <main>            role matrix -> the main optimizer, lr_scale 1, weight decay cfg.weight_decay
//   adam_decay        role head (and embedding if cfg.decay_embeddings)
//                     -> AdamW, lr_scale adam_lr_ratio, weight decay adam_weight_decay
//   adam_no_decay     role vector (and embedding otherwise) -> AdamW, lr_scale adam_lr_ratio, no decay
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/param_groups.hpp"

namespace expt::optim {

struct HybridRouting {
  std::vector<GroupRule> rules;           // all rules above, in order
  std::vector<ParamGroup> groups;         // one per rule, over all parameters
  std::size_t main_group = 0;             // index of <main> in rules/groups
  std::vector<std::size_t> main_params;   // parameter indices routed to the main optimizer
  std::vector<std::size_t> adam_params;   // the others, ascending
  std::vector<nn::ParamInfo> adam_infos;  // params[adam_params[k]]
  std::vector<GroupRule> adam_rules;      // rules without <main>, for the AdamW part
};

// Builds the routing above. Throws std::invalid_argument when a parameter routed to the main
// optimizer is not 2-D.
HybridRouting route_hybrid(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
                           const std::string& main_group);

}  // namespace expt::optim
