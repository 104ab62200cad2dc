#include "optimizers/muon.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace expt::optim {

double muon_scale_factor(MuonScale scale, std::int64_t m, std::int64_t n) {
  const double md = static_cast<double>(m), nd = static_cast<double>(n);
  if (scale == MuonScale::original) return std::sqrt(std::max(1.0, md / nd));
  return 0.2 * std::sqrt(std::max(md, nd));
}

std::vector<kernels::NsCoefficients> ns_schedule(config::NsCoefficients coefficients, int steps) {
  if (steps < 1) throw std::invalid_argument("ns_steps must be >= 1");
  switch (coefficients) {
    case config::NsCoefficients::keller_jordan:
      return std::vector<kernels::NsCoefficients>(steps, kernels::kKellerJordanNs);
    case config::NsCoefficients::classic_quintic:
      return std::vector<kernels::NsCoefficients>(steps, kernels::kClassicQuinticNs);
  }
  throw std::logic_error("ns_schedule: unhandled coefficient set");
}

namespace {

kernels::NsMethod kernel_method(config::NsMethod method) {
  switch (method) {
    case config::NsMethod::gram:
      return kernels::NsMethod::gram;
    case config::NsMethod::standard:
      return kernels::NsMethod::standard;
  }
  throw std::logic_error("muon: unhandled ns_method");
}

}  // namespace

OptimizerMemory Muon::memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) {
  const HybridRouting routing = route_hybrid(cfg, params, "muon");
  OptimizerMemory mem = adamw_part_memory(routing);
  std::size_t largest = 0, largest_workspace = 0;
  for (std::size_t i : routing.main_params) {
    const nn::ParamInfo& p = params[i];
    mem.state += sizeof(float) * static_cast<double>(p.size);
    largest = std::max(largest, p.size);
    largest_workspace = std::max(largest_workspace, kernels::newton_schulz_workspace_size(static_cast<int>(p.rows()),
                                                                                          static_cast<int>(p.cols())));
  }
  mem.scratch += sizeof(float) * (2.0 * static_cast<double>(largest) + static_cast<double>(largest_workspace));
  return mem;
}

Muon::Muon(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params)
    : HybridOptimizer(cfg, params, "muon") {
  if (!(cfg.momentum >= 0.0 && cfg.momentum < 1.0)) throw std::invalid_argument("muon: momentum must be in [0, 1)");
  if (!(cfg.ns_eps > 0.0)) throw std::invalid_argument("muon: ns_eps must be > 0");
  momentum_beta_ = cfg.momentum;
  nesterov_ = cfg.nesterov;
  ns_eps_ = cfg.ns_eps;
  scale_ = cfg.scale;
  ns_steps_ = ns_schedule(cfg.ns_coefficients, cfg.ns_steps);
  ns_method_ = kernel_method(cfg.ns_method);

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
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    const auto& p = params_[routing_.main_params[k]];
    add_array<float>(
        "momentum/" + p.name, p.shape,
        [this, k] {
          return std::span<float>(momentum_.data() + momentum_offset_[k], params_[routing_.main_params[k]].size);
        },
        &ownership_, k);
  }
}

std::vector<double> Muon::matrix_costs() const {
  std::vector<double> cost;
  for (std::size_t i : routing_.main_params) {
    const auto& p = params_[i];
    cost.push_back(kernels::newton_schulz_flops(static_cast<int>(p.rows()), static_cast<int>(p.cols()),
                                                static_cast<int>(ns_steps_.size()), ns_method_));
  }
  return cost;
}

void Muon::update_matrix(std::size_t k, const ParamRef& param, double lr_main, float decay) {
  const float mu = static_cast<float>(momentum_beta_);
  const float one_minus_mu = static_cast<float>(1.0 - momentum_beta_);
  const auto& p = params_[routing_.main_params[k]];
  const int m = static_cast<int>(p.rows()), n = static_cast<int>(p.cols());
  const float* g = param.grad;
  float* w = param.value;
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

}  // namespace expt::optim
