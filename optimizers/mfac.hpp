// M-FAC: sliding-window inverse empirical Fisher (docs/derivations/mfac.md).
//
// Both windows hold the last m gradients g_i as the rows of G (m x d, row = ring slot; unfilled
// rows are zero) and apply F̂⁻¹ = (λ·I + GᵀG/m)⁻¹ to a vector, with ε = 1/λ. The divisor stays m
// while the window fills (reference behaviour). G is T; every m-sized quantity is double.
//
// MfacWindow (the optimizer's): Woodbury,
//   F̂⁻¹ = ε·I − ε²·Gᵀ A⁻¹ G,   A = ε·G Gᵀ + m·I   (m x m, SPD, eigenvalues >= m)
// with A kept as its Cholesky factor A = Rᵀ R (R upper, m x m) in chronological order: row/column
// 0 is the oldest slot (the next to be overwritten; unfilled slots count as oldest, their rows of A
// are m·e_i), row/column m−1 the newest. An insert costs O(m·d + m²):
//   1. G[s] ← g; k = G g (the Gram row, one pass over G)
//   2. drop the oldest: A without its first row/column is A₂₂ = R₂₂ᵀR₂₂ + r r·, r = R[0, 1:], a
//      rank-1 *update* (Givens-style, no subtraction of positives) of R₂₂, shifted to the top left
//   3. append the newest: Rᵀ[:m−1] w = ε·k[older slots] (one triangular solve),
//      R[m−1, m−1] = sqrt(ε·k_s + m − wᵀw)   (a Schur complement of A, >= m)
// and IHVP(x) = ε·x − Gᵀ c with c = ε²·A⁻¹(G x): one pass for G x, two triangular solves, one
// pass for Gᵀ c. In the fused insert + IHVP(g), G g is the Gram row: two passes over G per step.
// R is state (saved and restored), never refactored: refactoring from K would change its bits and
// break bit-exact resume, and the rank-1 updates keep it accurate (tests: 5000 inserts).
//
// Column sharding (docs/optimizers.md "Distributed"): a window may hold only some columns of G (dim = this rank's
// share); the m-vectors G g and G x are then partial sums that the caller sums over the ranks
// (allreduce) before the factor update and the solves, which every rank runs identically on the
// identical sums. The convenience calls take the communicator and do that themselves.
//
// MfacReferenceWindow: the dynamic coefficient algorithm (K, D, B, d; an O(m³)
// refactorisation after every insert): the plain reference the tests hold MfacWindow equal to.
//
// MFac, the optimizer (reference optim.MFAC wrapper): all parameters as one flat vector (or
// contiguous blocks of block_size scalars, each with its own window), per step
//   ĝ = g + wd·θ                       (wd_mode coupled_l2; decoupled_lr_scaled: θ ← θ·(1−η·wd))
//   insert ĝ, u = IHVP(ĝ)              (the insert's Gram row is IHVP's G ĝ: one pass saved)
//   z ← μ·z + (1−μ)·u, u ← z           (when momentum μ > 0)
//   θ ← θ − η·u
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::optim {

template <class T>
class MfacWindow {
 public:
  // dim: the columns of G this window holds (all of them, or one rank's share).
  MfacWindow(int window, std::size_t dim, double damping);

  int window() const { return m_; }
  std::size_t dim() const { return d_; }
  int count() const { return count_; }  // gradients inserted so far, capped at window
  int next_slot() const { return slot_; }

  // g, x, y: this window's columns; with comm (the ranks that share the window's columns) the
  // m-vectors are summed over comm. y may alias x. Allocate nothing.
  void insert(const T* g, comm::Communicator* comm = nullptr);
  void ihvp(const T* x, T* y, comm::Communicator* comm = nullptr);
  // insert(g) then y = F̂⁻¹ g, reusing the Gram row as G g.
  void insert_and_ihvp(const T* g, T* y, comm::Communicator* comm = nullptr);

  // The phases, for callers that batch the sums of several windows into one allreduce:
  // G[s] ← g and k = G g over this window's columns (m values, slot order).
  void write_gradient(const T* g, double* k);
  // Drops the oldest gradient from the factor, appends g's given its full Gram row k, advances s.
  void update_factor(const double* k);
  // p = G x over this window's columns.
  void project(const T* x, double* p);
  // y = ε·x − ε²·Gᵀ A⁻¹ p, p = G x summed over all columns.
  void apply(const double* p, const T* x, T* y);

  std::span<const T> gradients() const { return {G_.get(), static_cast<std::size_t>(m_) * d_}; }  // m x dim
  std::span<const double> factor() const { return R_; }  // R, m x m upper, chronological order
  // Restores G from columns [first_col, first_col + dim) of an m x full_dim matrix.
  void restore_gradients(std::span<const T> G, std::size_t full_dim, std::size_t first_col);
  // Restores R (m x m) and the ring position (slot in [0, m), count in [0, m]).
  void restore_factor(std::span<const double> R);
  void restore_position(int slot, int count);

 private:
  int m_;
  std::size_t d_;
  double eps_;  // 1/λ
  int slot_ = 0, count_ = 0;
  // calloc'd: pages stay untouched (no memory) until written, so a window built and dropped before
  // the optimizer learns its shard (MFac::set_communicator) costs nothing.
  std::unique_ptr<T[], decltype(&std::free)> G_{nullptr, &std::free};
  std::vector<double> R_, work_, u_, k_;
  std::vector<T> t_m_;  // an m-vector in T for the BLAS passes
};

template <class T>
class MfacReferenceWindow {
 public:
  MfacReferenceWindow(int window, std::size_t dim, double damping);
  void insert(const T* g);                 // G row, Gram row into K, then the O(m³) refactorisation
  void ihvp(const T* x, T* y);             // y may alias x
  void insert_and_ihvp(const T* g, T* y);  // reuses the Gram row as G g
  int next_slot() const { return slot_; }
  std::span<const double> gram() const { return K_; }      // m x m, slot order
  std::span<const double> d_factor() const { return D_; }  // m x m, upper triangle used
  std::span<const double> b_factor() const { return B_; }  // m x m, lower triangle used
  std::span<const double> denominators() const { return dvec_; }

 private:
  void insert_row(const T* g);  // leaves p_ = G g
  void factor();
  void apply(const T* x, T* y);  // uses p_ = G x

  int m_;
  std::size_t d_;
  double eps_;
  int slot_ = 0;
  std::vector<T> G_;
  std::vector<double> K_, D_, B_, dvec_, p_, q_, c_;
  std::vector<T> p_t_, c_t_;
};

class MFac : public Optimizer {
 public:
  MFac(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "mfac"; }
  // Over the flat dimension d (every parameter) cut into blocks, window m: state the momentum
  // (4 d B), per block G (m x block floats), R (m x m doubles), slot and count. Scratch: the flat
  // copy and the update (4 d B each), the Gram rows (8 m B per block) and per window four m-vectors.
  // Unsharded (sharding over P ranks keeps d/P columns per rank).
  static OptimizerMemory memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);
  // Allocates nothing after the first call.
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;
  // State: "momentum" (d floats), per block b "block<b>/G" (m x block dim), "block<b>/R" (m x m),
  // "block<b>/slot", "block<b>/count". Sharded, state() is a collective (every rank calls it and
  // gets the full state; the window is all-gathered row by row, transiently m·d floats per rank),
  // and every rank loads the full state and keeps its columns.
  // With cfg.shard and more than one rank, rank r keeps columns [r·c, min(d, (r+1)·c)),
  // c = ceil(d/P), of every window, of the momentum and of the update: memory m·d/P per rank.
  // Per step one allreduce of the partial Gram rows (double, blocks·m values), the m x m work on
  // every rank, and an allgather of the updated parameters. Must come before the first step and
  // before load_state.
  void set_communicator(comm::Communicator* comm) override;

  std::size_t block_count() const { return windows_.size(); }
  const MfacWindow<float>& window(std::size_t block) const { return windows_[block]; }
  std::size_t local_begin() const { return lo_; }  // this rank's flat columns [begin, end)
  std::size_t local_end() const { return hi_; }

 private:
  void build_windows();
  void gather_flat(std::span<const float> local, std::span<float> full) const;  // every rank's columns
  // The m x (block dim) window of block b, all columns (gathered from every rank when sharded).
  void save_window(std::size_t b, std::span<float> out) const;
  void after_load() override { started_ = true; }

  std::vector<nn::ParamInfo> params_;
  std::vector<std::size_t> param_start_;  // flat offset of each parameter
  std::size_t dim_ = 0;
  int window_ = 0;
  double damping_ = 0.0;
  std::vector<std::size_t> block_start_;  // block b covers [block_start_[b], block_start_[b+1])
  std::vector<MfacWindow<float>> windows_;
  std::vector<float> flat_, update_, momentum_;  // this rank's columns [lo_, hi_)
  std::vector<double> gram_;                     // blocks x m partial, then full, Gram rows
  double mu_ = 0.0;
  bool coupled_ = true;
  bool shard_ = true;
  bool started_ = false;  // a step or load_state happened
  comm::Communicator* comm_ = nullptr;
  std::size_t lo_ = 0, hi_ = 0, chunk_ = 0;
  // chunk_ and P·chunk_ floats: the parameter allgather (and state()'s, hence mutable).
  mutable std::vector<float> send_, recv_;
};

extern template class MfacWindow<float>;
extern template class MfacWindow<double>;
extern template class MfacReferenceWindow<float>;
extern template class MfacReferenceWindow<double>;

}  // namespace expt::optim
