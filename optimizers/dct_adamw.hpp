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
// t is one counter for the whole optimizer. The AdamW part (HybridOptimizer, hybrid_optimizer.hpp)
// takes embedding, head, vectors and adam_patterns matrices. Moments and products are float (sgemm).
// State: "t", per low-rank matrix "M/<name>", "V/<name>" (m x r or r x n) and "I/<name>" (r
// indices); "adamw/..." for the AdamW part.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/hybrid_optimizer.hpp"

namespace expt::optim {

class DctAdamW : public HybridOptimizer {
 public:
  DctAdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "dct_adamw"; }
  // State: the AdamW part's, t, and per routed m x n matrix (s = min(m, n), r = min(rank, s)) M and
  // V (max(m, n) x r floats each) and I (r int64). Scratch: the previous I, one s x s DCT matrix per
  // distinct s, and the buffers of the largest matrix (scores and ranking over s, S = G Q of its
  // full size, Q[:, I], the low-rank gradient and the remap buffer).
  static OptimizerMemory memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  // The selected DCT indices of parameter i (which must be routed to the low-rank part).
  std::span<const std::int64_t> indices(std::size_t i) const;

 private:
  struct LowRank {
    int m = 0, n = 0, s = 0, r = 0;
    bool right = true;                    // m ≥ n: project the columns
    std::vector<float> M, V;              // m x r (right) or r x n (left); empty on a non-owner
    std::vector<std::int64_t> I, I_prev;  // r indices into [0, s)
  };

  void begin_step(double lr_main) override;
  void update_matrix(std::size_t k, const ParamRef& p, double lr_main, float decay) override;
  // Multiply-adds per step: G·Q[:, I] and U·Q[:, I]ᵀ (2·m·n·r), and the full S = G·Q of a refresh
  // amortised (m·n·s/refresh_every).
  std::vector<double> matrix_costs() const override;
  // A non-owner frees M and V (it keeps I, which every rank loads).
  void on_ownership() override;
  void after_load() override;

  std::vector<LowRank> low_rank_;
  std::vector<std::size_t> low_rank_of_;   // parameter index -> slot in low_rank_ (or npos)
  std::map<int, std::vector<float>> dct_;  // s -> C (s x s)
  // Scratch for the largest matrix.
  std::vector<float> scores_, projected_, q_selected_, low_grad_, remap_;
  std::vector<std::pair<float, std::int64_t>> ranking_;
  std::int64_t t_ = 0;
  // This step's: whether the columns are reselected, lr·sqrt(1−β2^t)/(1−β1^t) and ε·sqrt(1−β2^t).
  bool refresh_ = false;
  float step_size_ = 0.0f, eps_eff_ = 0.0f;
  double beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8;
  int rank_ = 32, refresh_every_ = 200;
  bool remap_on_refresh_ = false;
};

}  // namespace expt::optim
