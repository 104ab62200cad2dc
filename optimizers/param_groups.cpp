#include "optimizers/param_groups.hpp"

#include <algorithm>
#include <stdexcept>

namespace expt::optim {

// Iterative glob with single backtracking point: on a mismatch after a '*', let that star swallow
// one more character and retry. Linear in practice, no recursion.
bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos;  // position of the last '*' seen in pattern
  std::size_t star_text = 0;                  // text position that star is currently matched up to
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool rule_matches(const GroupRule& rule, const nn::ParamInfo& param) {
  const bool role_ok =
      rule.roles.empty() || std::find(rule.roles.begin(), rule.roles.end(), param.role) != rule.roles.end();
  const bool name_ok = rule.pattern.empty() || glob_match(rule.pattern, param.name);
  return role_ok && name_ok;
}

std::vector<ParamGroup> build_param_groups(std::span<const GroupRule> rules, const std::vector<nn::ParamInfo>& params) {
  std::vector<ParamGroup> groups;
  groups.reserve(rules.size());
  for (const auto& rule : rules) {
    for (const auto& g : groups)
      if (g.name == rule.group) throw std::invalid_argument("parameter group '" + rule.group + "' is defined twice");
    groups.push_back(ParamGroup{rule.group, rule.lr_scale, rule.weight_decay, {}});
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::size_t r = 0;
    while (r < rules.size() && !rule_matches(rules[r], params[i])) ++r;
    if (r == rules.size())
      throw std::invalid_argument("parameter '" + params[i].name + "' (role " +
                                  std::string(nn::to_string(params[i].role)) + ") matches no parameter-group rule");
    groups[r].params.push_back(i);
  }
  return groups;
}

std::vector<std::size_t> group_of_params(const std::vector<ParamGroup>& groups, std::size_t param_count) {
  constexpr std::size_t unassigned = static_cast<std::size_t>(-1);
  std::vector<std::size_t> group_of(param_count, unassigned);
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t i : groups[g].params) {
      if (i >= param_count)
        throw std::invalid_argument("group '" + groups[g].name + "' names a parameter out of range");
      if (group_of[i] != unassigned)
        throw std::invalid_argument("parameter " + std::to_string(i) + " is in two groups");
      group_of[i] = g;
    }
  for (std::size_t i = 0; i < param_count; ++i)
    if (group_of[i] == unassigned) throw std::invalid_argument("parameter " + std::to_string(i) + " is in no group");
  return group_of;
}

std::vector<GroupRule> adamw_default_rules(const config::OptimizerConfig& cfg) {
  using nn::ParamRole;
  GroupRule decay{"decay", {ParamRole::matrix, ParamRole::head}, "", 1.0, cfg.weight_decay};
  GroupRule no_decay{"no_decay", {ParamRole::vector}, "", 1.0, 0.0};
  (cfg.decay_embeddings ? decay : no_decay).roles.push_back(ParamRole::embedding);
  return {decay, no_decay};
}

}  // namespace expt::optim
