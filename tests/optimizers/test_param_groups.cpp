// Parameter-group rules: glob matching, role and pattern routing, first match wins.
#include <catch2/catch.hpp>
#include <stdexcept>
#include <vector>

#include "optimizers/param_groups.hpp"

using expt::nn::ParamInfo;
using expt::nn::ParamRole;
using expt::optim::build_param_groups;
using expt::optim::glob_match;
using expt::optim::group_of_params;
using expt::optim::GroupRule;

namespace {

std::vector<ParamInfo> model_params() {
  return {
      {"embed.weight", {10, 4}, ParamRole::embedding, 0, 40},
      {"blocks.0.mixer.q_proj.weight", {4, 4}, ParamRole::matrix, 40, 16},
      {"blocks.0.mixer.norm.weight", {4}, ParamRole::vector, 56, 4},
      {"blocks.0.mlp.up_proj.weight", {8, 4}, ParamRole::matrix, 60, 32},
      {"blocks.1.mixer.q_proj.weight", {4, 4}, ParamRole::matrix, 92, 16},
      {"norm_f.weight", {4}, ParamRole::vector, 108, 4},
      {"lm_head.weight", {10, 4}, ParamRole::head, 112, 40},
  };
}

}  // namespace

TEST_CASE("param groups: glob", "[groups]") {
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "anything.at.all"));
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "a"));
  CHECK(glob_match("*.mixer.*", "blocks.0.mixer.q_proj.weight"));
  CHECK_FALSE(glob_match("*.mixer.*", "blocks.0.mlp.up_proj.weight"));
  CHECK_FALSE(glob_match("*.mixer.*", "mixer.weight"));  // needs a dot before "mixer"
  CHECK(glob_match("blocks.?.mixer.*", "blocks.1.mixer.k"));
  CHECK_FALSE(glob_match("blocks.?.mixer.*", "blocks.12.mixer.k"));
  CHECK(glob_match("*weight", "lm_head.weight"));
  CHECK_FALSE(glob_match("*weight", "lm_head.weight.x"));
  CHECK(glob_match("a*b*c", "aXXbYYbc"));
  CHECK_FALSE(glob_match("a*b*c", "aXXbYYb"));
  CHECK(glob_match("**.bias", "x.y.bias"));
  CHECK(glob_match("exact.name", "exact.name"));
  CHECK_FALSE(glob_match("exact.name", "exact.names"));
}

TEST_CASE("param groups: routing by role and pattern, first match wins", "[groups]") {
  const auto params = model_params();
  const std::vector<GroupRule> rules = {
      {"mixer", {ParamRole::matrix}, "*.mixer.*", 0.5, 0.3},  // mixer matrices only, not the mixer norm
      {"decay", {ParamRole::matrix, ParamRole::head}, "", 1.0, 0.1},
      {"rest", {}, "", 1.0, 0.0},
  };
  const auto groups = build_param_groups(rules, params);
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].name == "mixer");
  CHECK(groups[0].lr_scale == 0.5);
  CHECK(groups[0].weight_decay == 0.3);
  CHECK(groups[0].params == std::vector<std::size_t>{1, 4});
  CHECK(groups[1].params == std::vector<std::size_t>{3, 6});
  CHECK(groups[2].params == std::vector<std::size_t>{0, 2, 5});
  CHECK(group_of_params(groups, params.size()) == std::vector<std::size_t>{2, 0, 2, 1, 0, 2, 1});

  // The same rules in another order: the catch-all first takes everything.
  const std::vector<GroupRule> reversed = {rules[2], rules[1], rules[0]};
  const auto all_rest = build_param_groups(reversed, params);
  CHECK(all_rest[0].params.size() == params.size());
  CHECK(all_rest[1].params.empty());
  CHECK(all_rest[2].params.empty());
}

TEST_CASE("param groups: AdamW default rules", "[groups]") {
  const auto params = model_params();
  expt::config::OptimizerConfig cfg;
  cfg.weight_decay = 0.2;
  auto groups = build_param_groups(expt::optim::adamw_default_rules(cfg), params);
  CHECK(groups[0].name == "decay");
  CHECK(groups[0].weight_decay == 0.2);
  CHECK(groups[0].params == std::vector<std::size_t>{1, 3, 4, 6});
  CHECK(groups[1].name == "no_decay");
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(groups[1].params == std::vector<std::size_t>{0, 2, 5});
  cfg.decay_embeddings = true;
  groups = build_param_groups(expt::optim::adamw_default_rules(cfg), params);
  CHECK(groups[0].params == std::vector<std::size_t>{0, 1, 3, 4, 6});
  CHECK(groups[1].params == std::vector<std::size_t>{2, 5});
}

TEST_CASE("param groups: errors", "[groups]") {
  const auto params = model_params();
  const std::vector<GroupRule> no_vectors = {
      {"matrices", {ParamRole::matrix, ParamRole::head, ParamRole::embedding}, "", 1.0, 0.0}};
  CHECK_THROWS_WITH(build_param_groups(no_vectors, params), Catch::Contains("blocks.0.mixer.norm.weight"));
  const std::vector<GroupRule> twice = {{"a", {ParamRole::matrix}, "", 1.0, 0.0}, {"a", {}, "", 1.0, 0.0}};
  CHECK_THROWS_AS(build_param_groups(twice, params), std::invalid_argument);

  std::vector<expt::optim::ParamGroup> overlapping = {{"x", 1.0, 0.0, {0, 1}}, {"y", 1.0, 0.0, {1, 2}}};
  CHECK_THROWS_AS(group_of_params(overlapping, 3), std::invalid_argument);
  std::vector<expt::optim::ParamGroup> incomplete = {{"x", 1.0, 0.0, {0, 2}}};
  CHECK_THROWS_AS(group_of_params(incomplete, 3), std::invalid_argument);
}
