// AdamW with PyTorch semantics (docs/derivations/adamw.md). For a parameter θ with gradient g at its t-th
// update (t counts per parameter from 1), scheduled lr η, group lr scale s and weight decay λ:
//
//   η' = s·η
//   θ ← θ·(1 − η'·λ)                          decoupled decay on the pre-update weights
//   m ← β1·m + (1−β1)·g
//   v ← β2·v + (1−β2)·g⊙g
//   bc1 = 1 − β1^t,  bc2 = 1 − β2^t           computed in double
//   torch: θ ← θ − (η'/bc1) · m ⊘ (sqrt(v)/sqrt(bc2) + ε)
//   hf:    θ ← θ − (η'·sqrt(bc2)/bc1) · m ⊘ (sqrt(v) + ε)    (= torch with ε replaced by ε/sqrt(bc2))
//
// θ, m, v and the elementwise arithmetic are float, as in PyTorch; the per-step scalars are formed
// in double and rounded to float once. State per parameter: m, v (same size as θ) and t.
// Parameter groups come from rules (param_groups.hpp); by default "decay" (matrix, head, and
// embedding if decay_embeddings) and "no_decay" (vector, and embedding otherwise).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/param_groups.hpp"

namespace expt::optim {

// Where ε enters the denominator (docs/derivations/adamw.md).
using config::EpsMode;

class AdamW : public Optimizer {
 public:
  // Groups from adamw_default_rules(cfg).
  AdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);
  // Groups from explicit rules (a hybrid optimizer passes the rules of its AdamW part).
  AdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params, std::span<const GroupRule> rules);

  std::string name() const override { return "adamw"; }
  // State m and v (4 B each per element) and t (8 B per parameter); no scratch.
  static OptimizerMemory memory(const std::vector<nn::ParamInfo>& params);

  // `params` must list the constructor's parameters in the same order (names and sizes are
  // checked; std::invalid_argument otherwise). The bias corrections use each parameter's own
  // update counter t (PyTorch semantics), which equals `step` when every update is applied.
  // Allocates nothing.
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;

  // State: "m/<name>", "v/<name>" (float arrays shaped like the parameter) and "t/<name>" (int64).

  EpsMode eps_mode() const { return eps_mode_; }

 private:
  void init(const config::OptimizerConfig& cfg, std::span<const GroupRule> rules);

  std::vector<nn::ParamInfo> params_;  // copies: names, shapes, sizes, offsets into m_/v_ are ours
  std::vector<std::size_t> offset_;    // start of parameter i in m_ and v_
  std::vector<std::size_t> group_of_;  // group index of parameter i
  std::vector<float> m_;               // first moments, all parameters back to back
  std::vector<float> v_;               // second moments
  std::vector<std::int64_t> t_;        // updates applied to parameter i
  double beta1_ = 0.9;
  double beta2_ = 0.999;
  double eps_ = 1e-8;
  EpsMode eps_mode_ = EpsMode::torch;
};

}  // namespace expt::optim
