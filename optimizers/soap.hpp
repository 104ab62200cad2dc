// SOAP: Adam in the eigenbasis of Shampoo's Kronecker factors (optimizers.md section 3, reference
// soap.py semantics). For W (m x n) with gradient G, per preconditioned side:
//
//   call 1:  L = (1−β_s)·G Gᵀ,  R = (1−β_s)·Gᵀ G,  Q_L, Q_R = eigenvectors (descending);
//            W unchanged, t stays 0
//   call k:  Ĝ = Q_Lᵀ G Q_R;  t ← t+1
//            M ← β1 M + (1−β1) Ĝ;  V ← β2 V + (1−β2) Ĝ⊙Ĝ            (both in the eigenbasis)
//            W ← W − η·sqrt(1−β2^t)/(1−β1^t) · Q_L (M ⊘ (sqrt(V)+ε)) Q_Rᵀ
//            W ← W·(1 − η·λ)                                          (decay after the step)
//            L ← β_s L + (1−β_s) G Gᵀ;  R likewise
//            every f updates: M back to parameter space, refresh each side by one power
//            iteration + QR with V permuted by the sorted Rayleigh quotients, M into the new basis
//
// An axis longer than max_precond_dim has no preconditioner (identity); one_sided keeps only the
// first eligible axis; 1-D parameters (and 2-D ones that merge_dims flattens to one axis) are Adam
// with HF-style ε, decay after the step and a skipped first call. block_size B > 0 cuts every
// preconditioned axis longer than B into blocks of B (the last one shorter), each block an
// independent SOAP problem (Levanter's blocking). Eigen guards of section 7: L and R are symmetrised
// and get 1e-12·trace/size·I before the eigensolver; a zero statistic keeps the basis (identity
// at init). All preconditioner state and the moments are double.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/matrix_ownership.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::optim {

class Soap : public Optimizer {
 public:
  Soap(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "soap"; }
  // Allocates nothing after the first call, refresh steps included.
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;
  // Per parameter "<name>/t", "<name>/initialized"; per block b "<name>/<b>/{M,V,L,QL,R,QR}".
  // Sharded, a collective that gathers each preconditioned parameter's blocks from its owner.
  StateDict state() const override;
  void load_state(const StateDict& state) override;
  // With cfg.shard and more than one rank: each parameter with a preconditioned side has one owner
  // rank (matrix_ownership.hpp), by the cost of preconditioned_cost(). The owner alone keeps the
  // blocks' M, V, L, Q_L, R, Q_R (the other ranks free them), computes the update and broadcasts
  // the parameter; Adam-only parameters (1-D, merged, axes over max_precond_dim) stay replicated.
  // Every rank keeps t and initialized. Call before the first step and before load_state.
  void set_communicator(comm::Communicator* comm) override;
  // Owner rank of each preconditioned parameter (in preconditioned_params() order); empty unsharded.
  const std::vector<int>& owners() const { return ownership_.owners(); }
  const std::vector<std::size_t>& preconditioned_params() const { return preconditioned_; }
  // Multiply-adds per step of parameter i's blocks, h x w each with preconditioned sides of size
  // s ∈ {h, w}: 3(h²w + hw²) every step (two rotations, L and R) plus, every f steps, the refresh:
  // two rotations 2(h²w + hw²) and per side P·Q (s³) and the QR with its Q (≈ 4/3·s³).
  double preconditioned_cost(std::size_t i) const;

  // One independent SOAP problem: rows [row0, row0+rows) x cols [col0, col0+cols) of a parameter.
  struct Block {
    int row0 = 0, rows = 0, col0 = 0, cols = 0;
    bool left = false, right = false;  // preconditioned sides
    std::vector<double> M, V;          // rows x cols, in the eigenbasis
    std::vector<double> L, QL;         // rows x rows (left only)
    std::vector<double> R, QR;         // cols x cols (right only)
  };
  // Blocks of parameter i, for tests and diagnostics.
  std::span<const Block> blocks(std::size_t i) const;

 private:
  // Sizes M, V, L, Q_L, R, Q_R of a block for its shape (zeros), or frees them.
  static void allocate(Block& b, bool keep);

  struct ParamState {
    std::size_t first_block = 0, block_count = 0;
    int rows = 1, cols = 1;  // the 2-D view (a vector is 1 x d)
    std::int64_t t = 0;
    bool initialized = false;
  };
  // Per distinct preconditioner size: a preallocated QR and its output.
  struct QrWorkspace {
    Eigen::HouseholderQR<Eigen::MatrixXd> qr;
    Eigen::MatrixXd q;
    Eigen::VectorXd work;
  };

  void init_side(std::vector<double>& P, std::vector<double>& Q, int size);
  void refresh_side(const std::vector<double>& P, std::vector<double>& Q, int size, Block& block, bool rows_axis);
  // dst = Q_Lᵀ src Q_R (to the eigenbasis) or Q_L src Q_Rᵀ (back); src and dst are rows x cols.
  void rotate(const Block& b, const double* src, double* dst, bool to_basis);

  std::vector<nn::ParamInfo> params_;
  std::vector<ParamState> state_;
  std::vector<Block> blocks_;
  std::map<int, QrWorkspace> qr_;
  // Scratch, sized for the largest block.
  std::vector<double> g_, tmp_, rotated_, direction_, pq_, ev_, perm_scratch_;
  std::vector<int> order_;
  bool shard_ = true;
  std::vector<std::size_t> preconditioned_;  // parameters with a preconditioned block, ascending
  std::vector<std::size_t> shard_slot_;      // parameter -> index in preconditioned_ (or npos)
  MatrixOwnership ownership_;
  double beta1_ = 0.95, beta2_ = 0.95, shampoo_beta_ = 0.95, eps_ = 1e-8;
  int frequency_ = 10;
};

}  // namespace expt::optim
