// The part Muon and DCT-AdamW share (docs/optimizers.md "Routing"): hidden matrices go to the derived
// optimizer's matrix update, everything else to an internal AdamW (hybrid_routing.hpp), and with
// optimizer.shard each routed matrix has one owner rank (matrix_ownership.hpp) that alone keeps its
// state and computes its update, then broadcasts the matrix. The base class routes, builds the
// AdamW part (its groups and its state, saved under "adamw/"), assigns the owners and runs a step:
//
//   begin_step(lr_main)                        once per step, on every rank
//   update_matrix(k, ...) for each owned k     W ← the derived optimizer's update of matrix k
//   broadcast each matrix from its owner       (when sharded)
//   AdamW part step on the other parameters    (replicated)
//
// so a derived optimizer writes its matrix update, its state and its cost per matrix.
#pragma once

#include <cstdint>
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

class HybridOptimizer : public Optimizer {
 public:
  // Checks the parameters (check_param_refs), then the steps above. Allocates nothing.
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) final;
  // With cfg.shard and more than one rank: one owner rank per routed matrix, balanced by
  // matrix_costs(). Call before the first step and before load_state. Sharded, state() is a
  // collective that gathers each matrix's entries from its owner.
  void set_communicator(comm::Communicator* comm) final;
  // Owner rank of each routed matrix (in main_params() order); empty when not sharded.
  const std::vector<int>& owners() const { return ownership_.owners(); }
  // Parameter indices of the routed matrices, ascending (the rest go to the AdamW part).
  const std::vector<std::size_t>& main_params() const { return routing_.main_params; }

 protected:
  // main_group: the name of the routed matrices' group ("muon", "dct_adamw").
  HybridOptimizer(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params,
                  const std::string& main_group);
  // The AdamW part's memory (AdamW::memory of the parameters the routing gives it).
  static OptimizerMemory adamw_part_memory(const HybridRouting& routing) { return AdamW::memory(routing.adam_infos); }

  // Once per step before the matrix updates; lr_main = lr x the main group's lr_scale.
  virtual void begin_step(double lr_main) { (void)lr_main; }
  // Updates routed matrix k (parameter p, W in p.value) on its owner: decay = 1 − lr_main·λ of the
  // main group, applied by the derived optimizer where its rule says.
  virtual void update_matrix(std::size_t k, const ParamRef& p, double lr_main, float decay) = 0;
  // Cost per step of each routed matrix (any unit), which the owner balance evens out.
  virtual std::vector<double> matrix_costs() const = 0;
  // Called once the owners are known, e.g. to free the state of matrices this rank does not own.
  virtual void on_ownership() {}

  std::vector<nn::ParamInfo> params_;
  HybridRouting routing_;
  MatrixOwnership ownership_;

 private:
  bool shard_ = true;
  std::unique_ptr<AdamW> adam_;
  std::vector<ParamRef> adam_refs_;  // reused every step
};

}  // namespace expt::optim
