#include "optimizers/muon.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/comm/communicator.hpp"

namespace expt::optim {

MuonScale muon_scale_from_string(std::string_view name) {
  if (name == "original") return MuonScale::original;
  if (name == "moonlight") return MuonScale::moonlight;
  throw std::invalid_argument("unknown muon scale '" + std::string(name) + "' (known: original, moonlight)");
}

double muon_scale_factor(MuonScale scale, std::int64_t m, std::int64_t n) {
  const double md = static_cast<double>(m), nd = static_cast<double>(n);
  if (scale == MuonScale::original) return std::sqrt(std::max(1.0, md / nd));
  return 0.2 * std::sqrt(std::max(md, nd));
}

kernels::NsMethod ns_method_from_string(std::string_view name) {
  if (name == "gram") return kernels::NsMethod::gram;
  if (name == "standard") return kernels::NsMethod::standard;
  throw std::invalid_argument("unknown ns_method '" + std::string(name) + "' (known: gram, standard)");
}

std::vector<kernels::NsCoefficients> ns_schedule(const std::string& name, int steps) {
  if (steps < 1) throw std::invalid_argument("ns_steps must be >= 1");
  if (name == "keller_jordan") return std::vector<kernels::NsCoefficients>(steps, kernels::kKellerJordanNs);
  if (name == "classic_quintic") return std::vector<kernels::NsCoefficients>(steps, kernels::kClassicQuinticNs);
  throw std::invalid_argument("unknown ns_coefficients '" + name + "' (known: keller_jordan, classic_quintic)");
}

Muon::Muon(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params)
    : params_(params), routing_(route_hybrid(cfg, params, "muon")) {
  if (!(cfg.momentum >= 0.0 && cfg.momentum < 1.0)) throw std::invalid_argument("muon: momentum must be in [0, 1)");
  if (!(cfg.ns_eps > 0.0)) throw std::invalid_argument("muon: ns_eps must be > 0");
  momentum_beta_ = cfg.momentum;
  nesterov_ = cfg.nesterov;
  ns_eps_ = cfg.ns_eps;
  scale_ = muon_scale_from_string(cfg.scale);
  shard_ = cfg.shard;
  ns_steps_ = ns_schedule(cfg.ns_coefficients, cfg.ns_steps);
  ns_method_ = ns_method_from_string(cfg.ns_method);
  groups_ = routing_.groups;

  adam_ = std::make_unique<AdamW>(cfg, routing_.adam_infos, routing_.adam_rules);
  adam_refs_.resize(routing_.adam_params.size());

  std::size_t total = 0, largest = 0, largest_workspace = 0;
  for (std::size_t i : routing_.main_params) {
    const auto& p = params_[i];
    momentum_offset_.push_back(total);
    total += p.size;
    largest = std::max(largest, p.size);
    largest_workspace = std::max(largest_workspace, kernels::newton_schulz_workspace_size(static_cast<int>(p.rows()),
                                                                                          static_cast<int>(p.cols())));
  }
  momentum_.assign(total, 0.0f);
  ns_input_.assign(largest, 0.0f);
  ns_output_.assign(largest, 0.0f);
  ns_workspace_.assign(largest_workspace, 0.0f);
}

void Muon::set_communicator(comm::Communicator* comm) {
  std::vector<double> cost;  // the flops of the Newton–Schulz form each matrix runs (standard or Gram)
  for (std::size_t i : routing_.main_params) {
    const auto& p = params_[i];
    cost.push_back(kernels::newton_schulz_flops(static_cast<int>(p.rows()), static_cast<int>(p.cols()),
                                                static_cast<int>(ns_steps_.size()), ns_method_));
  }
  ownership_.assign(comm, shard_, cost);
}

void Muon::step(std::span<const ParamRef> params, std::int64_t step, double lr) {
  check_param_refs("muon", params, params_);
  const float mu = static_cast<float>(momentum_beta_);
  const float one_minus_mu = static_cast<float>(1.0 - momentum_beta_);
  const ParamGroup& group = routing_.groups[routing_.main_group];
  const double lr_main = lr * group.lr_scale;
  const float decay = static_cast<float>(1.0 - lr_main * group.weight_decay);

  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    if (!ownership_.owns(k)) continue;  // the owner keeps the momentum and broadcasts W below
    const std::size_t i = routing_.main_params[k];
    const auto& p = params_[i];
    const int m = static_cast<int>(p.rows()), n = static_cast<int>(p.cols());
    const float* g = params[i].grad;
    float* w = params[i].value;
    float* mom = momentum_.data() + momentum_offset_[k];
    float* u = ns_input_.data();
    for (std::size_t e = 0; e < p.size; ++e) {
      mom[e] = mu * mom[e] + one_minus_mu * g[e];
      u[e] = nesterov_ ? one_minus_mu * g[e] + mu * mom[e] : mom[e];
    }
    kernels::newton_schulz<float>(u, m, n, ns_steps_, ns_eps_, ns_output_.data(), std::span<float>(ns_workspace_),
                                  ns_method_);
    const float step_size = static_cast<float>(lr_main * muon_scale_factor(scale_, m, n));
    const float* o = ns_output_.data();
    for (std::size_t e = 0; e < p.size; ++e) w[e] = w[e] * decay - step_size * o[e];
  }
  if (ownership_.sharded())
    for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
      const std::size_t i = routing_.main_params[k];
      ownership_.share(k, std::span<float>(params[i].value, params_[i].size));
    }

  for (std::size_t k = 0; k < routing_.adam_params.size(); ++k) adam_refs_[k] = params[routing_.adam_params[k]];
  adam_->step(adam_refs_, step, lr);
}

StateDict Muon::state() const {
  StateDict sd;
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    const auto& p = params_[routing_.main_params[k]];
    // Sharded: the owner's momentum (share is a collective; a non-owner's copy is never updated).
    const float* own = momentum_.data() + momentum_offset_[k];
    std::vector<float> momentum(own, own + p.size);
    ownership_.share(k, std::span<float>(momentum));
    sd.put("momentum/" + p.name, std::span<const float>(momentum), p.shape);
  }
  sd.merge("adamw", adam_->state());
  return sd;
}

void Muon::load_state(const StateDict& state) {
  std::size_t expected = 0;
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    const auto& p = params_[routing_.main_params[k]];
    const std::string key = "momentum/" + p.name;
    if (!state.contains(key)) throw std::runtime_error("muon state: missing entry '" + key + "'");
    if (state.floats(key).size() != p.size)
      throw std::runtime_error("muon state: entry '" + key + "' has the wrong size");
    ++expected;
  }
  const StateDict adam_state = state.sub("adamw");
  if (state.entries().size() != expected + adam_state.entries().size())
    throw std::runtime_error("muon state: has entries that are neither 'momentum/<matrix>' nor 'adamw/...'");
  adam_->load_state(adam_state);
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    const auto& p = params_[routing_.main_params[k]];
    state.get_into("momentum/" + p.name, std::span<float>(momentum_.data() + momentum_offset_[k], p.size));
  }
}

}  // namespace expt::optim
