#include "optimizers/adamw.hpp"

#include <cmath>
#include <stdexcept>
#include <utility>

namespace expt::optim {

AdamW::AdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) : params_(params) {
  const auto rules = adamw_default_rules(cfg);
  init(cfg, rules);
}

AdamW::AdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
             std::span<const GroupRule> rules)
    : params_(params) {
  init(cfg, rules);
}

OptimizerMemory AdamW::memory(const std::vector<nn::ParamInfo>& params) {
  OptimizerMemory mem;
  for (const nn::ParamInfo& p : params) mem.state += 2.0 * sizeof(float) * static_cast<double>(p.size) + 8.0;
  return mem;
}

void AdamW::init(const config::OptimizerConfig& cfg, std::span<const GroupRule> rules) {
  if (!(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0)) throw std::invalid_argument("adamw: beta1 must be in [0, 1)");
  if (!(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0)) throw std::invalid_argument("adamw: beta2 must be in [0, 1)");
  if (!(cfg.eps >= 0.0)) throw std::invalid_argument("adamw: eps must be >= 0");
  for (const auto& rule : rules)
    if (!(rule.weight_decay >= 0.0) || !(rule.lr_scale >= 0.0))
      throw std::invalid_argument("adamw: group '" + rule.group + "' needs lr_scale >= 0 and weight_decay >= 0");
  beta1_ = cfg.beta1;
  beta2_ = cfg.beta2;
  eps_ = cfg.eps;
  eps_mode_ = cfg.eps_mode;

  groups_ = build_param_groups(rules, params_);
  group_of_ = group_of_params(groups_, params_.size());

  std::size_t total = 0;
  offset_.resize(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    offset_[i] = total;
    total += params_[i].size;
  }
  m_.assign(total, 0.0f);
  v_.assign(total, 0.0f);
  t_.assign(params_.size(), 0);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const nn::ParamInfo& p = params_[i];
    for (auto [prefix, moments] : {std::pair{"m/", &m_}, std::pair{"v/", &v_}})
      add_array<float>(prefix + p.name, p.shape,
                       [this, moments, i] { return std::span<float>(moments->data() + offset_[i], params_[i].size); });
    add_scalar("t/" + p.name, t_[i], [](std::span<const std::int64_t> t) -> std::optional<std::string> {
      if (t[0] < 0) return "is negative";
      return std::nullopt;
    });
  }
}

void AdamW::step(std::span<const ParamRef> params, std::int64_t /*step: the per-parameter t_ is used*/, double lr) {
  check_param_refs("adamw", params, params_);

  const float beta1 = static_cast<float>(beta1_);
  const float beta2 = static_cast<float>(beta2_);
  const float one_minus_beta1 = static_cast<float>(1.0 - beta1_);
  const float one_minus_beta2 = static_cast<float>(1.0 - beta2_);

  for (std::size_t i = 0; i < params.size(); ++i) {
    const ParamGroup& group = groups_[group_of_[i]];
    const double lr_i = lr * group.lr_scale;
    const std::int64_t t = ++t_[i];
    const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(t));

    // torch: θ -= (η'/bc1) · m / (sqrt(v)/sqrt(bc2) + ε), dividing by sqrt(bc2) as PyTorch does.
    // hf:    θ -= (η'·sqrt(bc2)/bc1) · m / (sqrt(v) + ε).
    const float decay = static_cast<float>(1.0 - lr_i * group.weight_decay);
    const float eps = static_cast<float>(eps_);
    const std::size_t n = params_[i].size;
    float* theta = params[i].value;
    const float* g = params[i].grad;
    float* m = m_.data() + offset_[i];
    float* v = v_.data() + offset_[i];

    if (eps_mode_ == EpsMode::torch) {
      const float step_size = static_cast<float>(lr_i / bc1);
      const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
      for (std::size_t k = 0; k < n; ++k) {
        theta[k] *= decay;
        m[k] = beta1 * m[k] + one_minus_beta1 * g[k];
        v[k] = beta2 * v[k] + one_minus_beta2 * g[k] * g[k];
        theta[k] -= step_size * (m[k] / (std::sqrt(v[k]) / bc2_sqrt + eps));
      }
    } else {
      const float step_size = static_cast<float>(lr_i * std::sqrt(bc2) / bc1);
      for (std::size_t k = 0; k < n; ++k) {
        theta[k] *= decay;
        m[k] = beta1 * m[k] + one_minus_beta1 * g[k];
        v[k] = beta2 * v[k] + one_minus_beta2 * g[k] * g[k];
        theta[k] -= step_size * (m[k] / (std::sqrt(v[k]) + eps));
      }
    }
  }
}

}  // namespace expt::optim
