// Muon (docs/derivations/muon.md, Keller Jordan's reference semantics): for every hidden matrix
// W (m x n, out x in) with gradient G, momentum μ, scheduled lr η, weight decay λ:
//
//   M ← μ·M + (1−μ)·G                              EMA momentum
//   U = (1−μ)·G + μ·M   (nesterov)   or   U = M
//   O = NS_k(U)                                    Newton–Schulz, kernels/newton_schulz.hpp
//   s = sqrt(max(1, m/n))        (scale: original)
//     = 0.2·sqrt(max(m, n))      (scale: moonlight, update RMS ≈ 0.2·η like AdamW)
//   W ← W·(1 − η·λ) − η·s·O                        decay with the unscaled η
//
// Everything else (embedding, head, vectors, and matrices named by adam_patterns) goes to an
// internal AdamW (HybridOptimizer, hybrid_optimizer.hpp). Momentum is float; NS runs in float
// through sgemm. State: "momentum/<name>" for each matrix and "adamw/..." for the AdamW part.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "kernels/newton_schulz.hpp"
#include "optimizers/hybrid_optimizer.hpp"

namespace expt::optim {

using config::MuonScale;

// The shape factor s of an m x n (out x in) matrix.
double muon_scale_factor(MuonScale scale, std::int64_t m, std::int64_t n);
// The k-step coefficient list of a coefficient set.
std::vector<kernels::NsCoefficients> ns_schedule(config::NsCoefficients coefficients, int steps);

class Muon : public HybridOptimizer {
 public:
  Muon(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "muon"; }
  // State: the AdamW part's, and the momentum of every routed matrix (4 B per element). Scratch:
  // U and O of the largest matrix and the largest Newton-Schulz workspace (floats).
  static OptimizerMemory memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

 private:
  // The owner of a matrix alone updates its momentum, runs NS and the update (sharded: the other
  // ranks never touch their copy of that momentum, and state() takes the owner's).
  void update_matrix(std::size_t k, const ParamRef& p, double lr_main, float decay) override;
  // The flops of the Newton–Schulz form each matrix runs (kernels::newton_schulz_flops, which counts
  // the Gram form where ns_method runs it).
  std::vector<double> matrix_costs() const override;

  std::vector<std::size_t> momentum_offset_;  // per Muon matrix, into momentum_
  std::vector<float> momentum_;
  std::vector<float> ns_input_;   // U of the current matrix
  std::vector<float> ns_output_;  // O of the current matrix
  std::vector<float> ns_workspace_;
  std::vector<kernels::NsCoefficients> ns_steps_;
  kernels::NsMethod ns_method_ = kernels::NsMethod::gram;
  double momentum_beta_ = 0.95;
  bool nesterov_ = true;
  double ns_eps_ = 1e-7;
  MuonScale scale_ = MuonScale::original;
};

}  // namespace expt::optim
