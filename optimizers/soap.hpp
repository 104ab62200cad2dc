// SOAP: Adam in the eigenbasis of Shampoo's Kronecker factors (docs/derivations/soap.md, reference
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
// first eligible axis; 1-D parameters are Adam with HF-style ε, decay after the step and a skipped
// first call. merge_dims (the original soap.py's): a 2-D m x n matrix with m·n <= max_precond_dim is
// one 1 x m·n block whose single axis has a full m·n x m·n (right) preconditioner. block_size B > 0 cuts every
// preconditioned axis longer than B into blocks of B (the last one shorter), each block an
// independent SOAP problem (Levanter's blocking). Eigen guards (docs/derivations/soap.md): L and R are symmetrised
// and get 1e-12·trace/size·I before the eigensolver; a zero statistic keeps the basis (identity
// at init).
//
// Precision (docs/optimizers.md "SOAP", decision 55): L, R, Q_L, Q_R, the eigensolver, the refresh's
// P·Q and QR, and the moments M, V are double (the checkpoint entries are double). The per-step
// work is float: the rotations Q_Lᵀ G Q_R and back are sgemms on float copies of Q_L, Q_R
// (refreshed with Q: init, refresh, load_state), and the statistics G Gᵀ, Gᵀ G are ssyrks (upper
// triangle, half the flops of a gemm) accumulated into the upper triangle of the double L, R. The
// lower triangle is mirrored from the upper where a full matrix is read: before the eigensolver, before
// each refresh (its norm and P·Q) and in state(). On refresh steps M is carried to the new basis by
// float rotations too. SoapReference keeps the all-double step (full dgemms) the tests hold the fast
// path to.
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
  // State: per parameter t and initialized (8 B each); per block (h x w, as the constructor cuts
  // them) M and V (h w doubles each), L and Q_L (h x h doubles each) on a preconditioned left side,
  // R and Q_R (w x w) on the right. Scratch: the float bases (4 h² / 4 w²), per distinct side size
  // s a QR workspace (2 s² + 3 s doubles), and the buffers of the largest block (b = h w) and side
  // (s): 4 b doubles, 3 b floats, s² doubles (P Q), max(b, s²) doubles, s² floats, s doubles and ints.
  static OptimizerMemory memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);
  // Allocates nothing after the first call, refresh steps included.
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;
  // State: per parameter "<name>/t", "<name>/initialized"; per block b "<name>/<b>/{M,V,L,QL,R,QR}"
  // (double; L and R whole). Sharded, state() gathers each preconditioned parameter's blocks from
  // its owner.
  // With cfg.shard and more than one rank: each parameter with a preconditioned side has one owner
  // rank (matrix_ownership.hpp), by the cost of preconditioned_cost(). The owner alone keeps the
  // blocks' M, V, L, Q_L, R, Q_R (the other ranks free them), computes the update and broadcasts
  // the parameter; Adam-only parameters (1-D, both axes over max_precond_dim) stay replicated.
  // Every rank keeps t and initialized. Call before the first step and before load_state.
  void set_communicator(comm::Communicator* comm) override;
  // Owner rank of each preconditioned parameter (in preconditioned_params() order); empty unsharded.
  const std::vector<int>& owners() const { return ownership_.owners(); }
  const std::vector<std::size_t>& preconditioned_params() const { return preconditioned_; }
  // Cost per step of parameter i's blocks in double multiply-adds (a float one counted as half:
  // sgemm runs at twice dgemm's rate), h x w each with preconditioned sides of size s ∈ {h, w}:
  // every step the two float rotations 2(h²w + hw²) and the float syrks (h²w + hw²)/2, so
  // 1.25(h²w + hw²); every f steps the refresh: two float rotations of M (h²w + hw²) and per side,
  // in double, P·Q (s³) and the QR with its Q (≈ 4/3·s³).
  double preconditioned_cost(std::size_t i) const;

  // One independent SOAP problem: rows [row0, row0+rows) x cols [col0, col0+cols) of a parameter.
  struct Block {
    int row0 = 0, rows = 0, col0 = 0, cols = 0;
    bool left = false, right = false;  // preconditioned sides
    std::vector<double> M, V;          // rows x cols, in the eigenbasis
    // rows x rows (left only) and cols x cols (right only). Soap keeps only the upper triangle of L
    // and R current between refreshes (state() gives them whole); SoapReference the whole matrices.
    std::vector<double> L, QL;
    std::vector<double> R, QR;
    std::vector<float> QLf, QRf;  // float copies of QL, QR for the per-step rotations
  };
  // Blocks of parameter i, for tests and diagnostics.
  std::span<const Block> blocks(std::size_t i) const;

 protected:
  // Selects SoapReference's all-double step.
  bool reference_ = false;

 private:
  // Sizes M, V, L, Q_L, R, Q_R of a block for its shape (zeros), or frees them.
  static void allocate(Block& b, bool keep);
  // The float copies of the loaded bases.
  void after_load() override;

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
  // The same with the float copies of the bases; src has row stride lds, dst row stride cols.
  void rotate_float(const Block& b, const float* src, int lds, float* dst, bool to_basis);
  // P ← keep·P + (1−β_s)·X with X = G Gᵀ (rows_axis, P rows x rows) or Gᵀ G (P cols x cols) on the
  // upper triangle of P: ssyrk into the upper triangle of a float scratch, accumulated in double.
  // g is the block's gradient, rows x cols with row stride ldg; keep = 0 overwrites P.
  void accumulate_statistics(std::vector<double>& P, const float* g, int ldg, int rows, int cols, bool rows_axis,
                             double keep);
  // One step of one block. alpha: the step's lr·sqrt(1−β2^t)/(1−β1^t); decay: 1 − lr·λ.
  void step_block(Block& b, const float* grad, int ldg, float* value, bool first_call, bool refresh, double alpha,
                  double decay);
  void step_block_reference(Block& b, const float* grad, int ldg, float* value, bool first_call, bool refresh,
                            double alpha, double decay);

  std::vector<nn::ParamInfo> params_;
  std::vector<ParamState> state_;
  std::vector<Block> blocks_;
  std::map<int, QrWorkspace> qr_;
  // Scratch, sized for the largest block.
  // g_, tmp_, rotated_, direction_: SoapReference's double step; the *_f_: Soap's float step;
  // pq_, ev_, perm_scratch_, order_: the refresh (both).
  std::vector<double> g_, tmp_, rotated_, direction_, pq_, ev_, perm_scratch_;
  std::vector<float> rotated_f_, tmp_f_, direction_f_, stat_f_;
  std::vector<int> order_;
  bool shard_ = true;
  std::vector<std::size_t> preconditioned_;  // parameters with a preconditioned block, ascending
  std::vector<std::size_t> shard_slot_;      // parameter -> index in preconditioned_ (or npos)
  MatrixOwnership ownership_;
  double beta1_ = 0.95, beta2_ = 0.95, shampoo_beta_ = 0.95, eps_ = 1e-8;
  int frequency_ = 10;
};

// The all-double SOAP step (rotations and statistics by full dgemms on a double copy of the
// gradient): the plain reference the tests hold Soap's float fast path to. Same state, checkpoint
// entries and sharding as Soap; not in the registry.
class SoapReference final : public Soap {
 public:
  SoapReference(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) : Soap(cfg, params) {
    reference_ = true;
  }
};

}  // namespace expt::optim
