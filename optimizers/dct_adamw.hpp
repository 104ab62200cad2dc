// DCT-projected low-rank AdamW (docs/derivations/dct_adamw.md, ISTA DCTAdamW semantics). For a routed
// matrix W (m x n) with gradient G, the smaller side s = min(m, n) is projected on r = min(rank, s)
// columns I of the orthonormal DCT-II matrix Q = C (s x s, kernels/dct.hpp, one per size):
//
//   θ ← θ·(1 − η·λ)                                          decay first
//   refresh (t = 1 or t mod refresh_every = 0):
//     right (m ≥ n): S = G·Q, score_j = ‖S[:, j]‖_1;  left: S = Qᵀ·G, score_i = ‖S[i, :]‖_1
//     I = the r best scores, sorted ascending; a = S[:, I] (right) or S[I, :] (left)
//     on_refresh remap (t > 1): moments of indices still selected move to their new slot, the
//     others restart at 0; keep: slots keep their values
//   otherwise: a = G·Q[:, I] (right) or Q[:, I]ᵀ·G (left)
//   M ← β1·M + (1−β1)·a;  V ← β2·V + (1−β2)·a⊙a
//   U = M ⊘ (ε·sqrt(1−β2^t) + sqrt(V))
//   θ ← θ − η·sqrt(1−β2^t)/(1−β1^t) · (U·Q[:, I]ᵀ (right) or Q[:, I]·U (left))
//
// t is one counter for the whole optimizer. The AdamW part (hybrid_routing.hpp) takes embedding,
// head, vectors and adam_patterns matrices. Moments and products are float (sgemm).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/adamw.hpp"
#include "optimizers/hybrid_routing.hpp"
#include "optimizers/matrix_ownership.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::optim {

class DctAdamW : public Optimizer {
 public:
  DctAdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "dct_adamw"; }
  // Allocates nothing.
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;
  // "t", per low-rank matrix "M/<name>", "V/<name>", "I/<name>"; "adamw/..." for the AdamW part.
  // Sharded, a collective that gathers each low-rank matrix's entries from its owner.
  StateDict state() const override;
  void load_state(const StateDict& state) override;
  // With cfg.shard and more than one rank: each low-rank matrix has one owner rank
  // (matrix_ownership.hpp), by the projection cost 2·m·n·r + m·n·s/refresh_every (multiply-adds
  // per step: G·Q[:, I] and U·Q[:, I]ᵀ, and the full S = G·Q of a refresh). The owner alone keeps
  // M, V, I (the other ranks free M and V), computes the update and broadcasts the matrix; the
  // AdamW part stays replicated. Every rank keeps t. Call before the first step and load_state.
  void set_communicator(comm::Communicator* comm) override;
  // Owner rank of each low-rank matrix (in low_rank_params() order); empty when not sharded.
  const std::vector<int>& owners() const { return ownership_.owners(); }

  // The selected DCT indices of parameter i (which must be routed to the low-rank part).
  std::span<const std::int64_t> indices(std::size_t i) const;
  const std::vector<std::size_t>& low_rank_params() const { return routing_.main_params; }

 private:
  struct LowRank {
    int m = 0, n = 0, s = 0, r = 0;
    bool right = true;                    // m ≥ n: project the columns
    std::vector<float> M, V;              // m x r (right) or r x n (left)
    std::vector<std::int64_t> I, I_prev;  // r indices into [0, s)
  };

  std::vector<nn::ParamInfo> params_;
  HybridRouting routing_;
  std::unique_ptr<AdamW> adam_;
  std::vector<ParamRef> adam_refs_;
  std::vector<LowRank> low_rank_;
  std::vector<std::size_t> low_rank_of_;   // parameter index -> slot in low_rank_ (or npos)
  std::map<int, std::vector<float>> dct_;  // s -> C (s x s)
  // Scratch for the largest matrix.
  std::vector<float> scores_, projected_, q_selected_, low_grad_, remap_;
  std::vector<std::pair<float, std::int64_t>> ranking_;
  std::int64_t t_ = 0;
  double beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8;
  int rank_ = 32, refresh_every_ = 200;
  bool remap_on_refresh_ = false;
  bool shard_ = true;
  MatrixOwnership ownership_;
};

}  // namespace expt::optim
