#include "optimizers/adamw.hpp"

#include <cmath>
#include <stdexcept>

namespace expt::optim {

EpsMode eps_mode_from_string(std::string_view name) {
  if (name == "torch") return EpsMode::torch;
  if (name == "hf") return EpsMode::hf;
  throw std::invalid_argument("unknown eps_mode '" + std::string(name) + "' (known: torch, hf)");
}

AdamW::AdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) : params_(params) {
  const auto rules = adamw_default_rules(cfg);
  init(cfg, rules);
}

AdamW::AdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
             std::span<const GroupRule> rules)
    : params_(params) {
  init(cfg, rules);
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
  eps_mode_ = eps_mode_from_string(cfg.eps_mode);

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
}

void AdamW::step(std::span<const ParamRef> params, std::int64_t /*step: the per-parameter t_ is used*/, double lr) {
  if (params.size() != params_.size())
    throw std::invalid_argument("adamw: step got " + std::to_string(params.size()) + " parameters, built for " +
                                std::to_string(params_.size()));
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].info->name != params_[i].name || params[i].size() != params_[i].size)
      throw std::invalid_argument("adamw: parameter " + std::to_string(i) + " is '" + params[i].info->name + "' (" +
                                  std::to_string(params[i].size()) + " elements), the optimizer was built for '" +
                                  params_[i].name + "' (" + std::to_string(params_[i].size) + " elements)");

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

StateDict AdamW::state() const {
  StateDict sd;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    sd.put("m/" + p.name, std::span<const float>(m_.data() + offset_[i], p.size), p.shape);
    sd.put("v/" + p.name, std::span<const float>(v_.data() + offset_[i], p.size), p.shape);
    sd.put_scalar("t/" + p.name, t_[i]);
  }
  return sd;
}

void AdamW::load_state(const StateDict& state) {
  // Validate everything first so a bad state leaves the optimizer untouched.
  for (const auto& p : params_) {
    for (const char* moment : {"m/", "v/"}) {
      const std::string key = moment + p.name;
      if (!state.contains(key))
        throw std::runtime_error("adamw state: missing entry '" + key + "' for parameter '" + p.name + "'");
      const auto& values = state.floats(key);
      if (values.size() != p.size)
        throw std::runtime_error("adamw state: entry '" + key + "' has " + std::to_string(values.size()) +
                                 " elements, parameter '" + p.name + "' has " + std::to_string(p.size));
    }
    const std::string t_key = "t/" + p.name;
    if (!state.contains(t_key))
      throw std::runtime_error("adamw state: missing entry '" + t_key + "' for parameter '" + p.name + "'");
    if (state.scalar_int(t_key) < 0) throw std::runtime_error("adamw state: entry '" + t_key + "' is negative");
  }
  if (state.entries().size() != 3 * params_.size()) {
    for (const auto& [key, value] : state.entries()) {
      const bool known = [&] {
        for (const auto& p : params_)
          if (key == "m/" + p.name || key == "v/" + p.name || key == "t/" + p.name) return true;
        return false;
      }();
      if (!known) throw std::runtime_error("adamw state: entry '" + key + "' matches no parameter of this optimizer");
    }
  }

  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    state.get_into("m/" + p.name, std::span<float>(m_.data() + offset_[i], p.size));
    state.get_into("v/" + p.name, std::span<float>(v_.data() + offset_[i], p.size));
    t_[i] = state.scalar_int("t/" + p.name);
  }
}

}  // namespace expt::optim
