// Parameter groups chosen by rules, in the spirit of torch.optim param groups: each rule selects
// parameters by role and/or by a glob on the dotted name and gives them an lr scale and a weight
// decay. Rules are tried in order and the first one that matches a parameter wins, so specific
// rules go before general ones:
//
//   {group "mixer_slow", pattern "*.mixer.*", lr_scale 0.5, weight_decay 0.1}
//   {group "decay",      roles {matrix, head},            weight_decay 0.1}
//   {group "no_decay",   roles {vector, embedding},       weight_decay 0.0}
//
// Every optimizer routes with this (AdamW's decay / no_decay split; Muon, SOAP and DCT-AdamW put
// their matrices in one group and send the rest to an AdamW part by the same mechanism).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::optim {

struct GroupRule {
  std::string group;                 // name of the group the matched parameters join
  std::vector<nn::ParamRole> roles;  // empty: any role
  std::string pattern;               // glob over the dotted name ('*' any run, '?' one char); empty: any name
  double lr_scale = 1.0;
  double weight_decay = 0.0;
};

// Glob match over the whole text: '*' matches any run of characters (dots included), '?' exactly
// one character, every other character itself.
bool glob_match(std::string_view pattern, std::string_view text);

// True when the parameter's role is in rule.roles (or roles is empty) and its name matches
// rule.pattern (or the pattern is empty).
bool rule_matches(const GroupRule& rule, const nn::ParamInfo& param);

// One group per rule, in rule order (a group may be empty); each parameter index goes to the group
// of the first rule that matches it, and the indices inside a group are ascending. Throws
// std::invalid_argument when two rules share a group name or a parameter matches no rule.
std::vector<ParamGroup> build_param_groups(std::span<const GroupRule> rules, const std::vector<nn::ParamInfo>& params);

// For each parameter index, the index of its group in `groups` (the inverse of ParamGroup::params).
std::vector<std::size_t> group_of_params(const std::vector<ParamGroup>& groups, std::size_t param_count);

// AdamW's rules (docs/optimizers.md "Routing", "decay 2-D weights only"): group "decay" = matrix and head
// (plus embedding when cfg.decay_embeddings) with cfg.weight_decay; group "no_decay" = vector (and
// embedding unless cfg.decay_embeddings) with weight decay 0. Both have lr_scale 1.
std::vector<GroupRule> adamw_default_rules(const config::OptimizerConfig& cfg);

}  // namespace expt::optim
