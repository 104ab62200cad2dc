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
// internal AdamW (hybrid_routing.hpp). Momentum is float; NS runs in float through sgemm.
// State: the momentum of each matrix and the AdamW part's state. optimizer.shard: see set_communicator.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "kernels/newton_schulz.hpp"
#include "optimizers/adamw.hpp"
#include "optimizers/hybrid_routing.hpp"
#include "optimizers/matrix_ownership.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::optim {

enum class MuonScale { original, moonlight };

MuonScale muon_scale_from_string(std::string_view name);  // "original" | "moonlight"
// The shape factor s of an m x n (out x in) matrix.
double muon_scale_factor(MuonScale scale, std::int64_t m, std::int64_t n);
// The k-step coefficient list named by cfg.ns_coefficients ("keller_jordan" | "classic_quintic").
std::vector<kernels::NsCoefficients> ns_schedule(const std::string& name, int steps);
// cfg.ns_method: "gram" (Gram NS where c >= 2r, kernels/newton_schulz.hpp) | "standard".
kernels::NsMethod ns_method_from_string(std::string_view name);

class Muon : public Optimizer {
 public:
  Muon(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "muon"; }
  // Allocates nothing (every buffer is sized in the constructor).
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;
  // Keys "momentum/<name>" for the Muon matrices and "adamw/..." for the AdamW part.
  StateDict state() const override;
  void load_state(const StateDict& state) override;
  // With cfg.shard and more than one rank: each Muon matrix has one owner rank
  // (matrix_ownership.hpp), chosen by the flops of its Newton–Schulz (kernels::newton_schulz_flops,
  // which counts the Gram form where ns_method runs it).
  // The owner alone updates the momentum, runs NS and the update, then broadcasts the matrix, so
  // the parameters equal the unsharded run's bit for bit and agree on every rank. Call before the
  // first step. Sharded, state() is a collective that gathers every momentum from its owner.
  void set_communicator(comm::Communicator* comm) override;
  // Owner rank of each Muon matrix (in muon_params() order); empty when not sharded.
  const std::vector<int>& owners() const { return ownership_.owners(); }

  // Parameter indices handled by Muon itself (the rest go to the AdamW part).
  const std::vector<std::size_t>& muon_params() const { return routing_.main_params; }

 private:
  std::vector<nn::ParamInfo> params_;
  HybridRouting routing_;
  std::unique_ptr<AdamW> adam_;
  std::vector<ParamRef> adam_refs_;           // reused every step
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
  bool shard_ = true;
  MatrixOwnership ownership_;
};

}  // namespace expt::optim
