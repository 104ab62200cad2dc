// M-FAC: sliding-window inverse empirical Fisher (optimizers.md section 4, dynamic algorithm).
//
// MfacWindow holds the last m gradients g_i (rows of G, m x d; unfilled rows are zero) and
// applies F̂⁻¹ = (λ·I + GᵀG/m)⁻¹ to a vector in O(m·d + m²), with ε = 1/λ:
//   K = G Gᵀ (Gram, updated one row per insert)
//   D_ji = ε·K_ji − Σ_{k<j} D_kj·D_ki/d_k  (j ≤ i),   d_j = m + D_jj
//        (the LU upper factor of εK + m·I minus m·I)
//   B_ii = ε,   B_ik = Σ_{j=k}^{i−1} (−D_ji/d_j)·B_jk  (i > k)
//   IHVP(x): p = G x;  q_i = ε·p_i − Σ_{j<i} (D_ji/d_j)·q_j;  c = Bᵀ(q ⊘ d);  y = ε·x − Gᵀ c
// The divisor stays m while the window fills (reference behaviour). K, D, B, d, p, q, c are double
// whatever T is; G is T. Refactoring after an insert costs O(m³) on m x m matrices.
//
// MFac, the optimizer (reference optim.MFAC wrapper, 4.6): all parameters as one flat vector (or
// contiguous blocks of block_size scalars, each with its own window), per step
//   ĝ = g + wd·θ                       (wd_mode coupled_l2; decoupled_lr_scaled: θ ← θ·(1−η·wd))
//   insert ĝ, u = IHVP(ĝ)              (the insert's Gram row is IHVP's p: one pass saved)
//   z ← μ·z + (1−μ)·u, u ← z           (when momentum μ > 0)
//   θ ← θ − η·u
#pragma once

#include <cstdint>
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
  MfacWindow(int window, std::size_t dim, double damping);

  int window() const { return m_; }
  std::size_t dim() const { return d_; }
  int count() const { return count_; }  // gradients inserted so far, capped at window
  int next_slot() const { return slot_; }

  // Writes g into the oldest slot and refactors; allocates nothing.
  void insert(const T* g);
  // y = F̂⁻¹ x; y may alias x. Allocates nothing.
  void ihvp(const T* x, T* y);
  // insert(g) then y = F̂⁻¹ g, reusing the Gram row as G·g.
  void insert_and_ihvp(const T* g, T* y);

  std::span<const T> gradients() const { return G_; }      // m x d, row = slot
  std::span<const double> gram() const { return K_; }      // m x m
  std::span<const double> d_factor() const { return D_; }  // m x m, upper triangle used
  std::span<const double> b_factor() const { return B_; }  // m x m, lower triangle used
  std::span<const double> denominators() const { return dvec_; }
  // Restores a saved window (G, K, slot, count) and refactors.
  void restore(std::span<const T> G, std::span<const double> K, int slot, int count);

 private:
  void insert_row(const T* g);  // G row, Gram row into K and p_
  void factor();
  void apply(const T* x, T* y);  // uses p_ = G x

  int m_;
  std::size_t d_;
  double eps_;  // 1/λ
  int slot_ = 0, count_ = 0;
  std::vector<T> G_;
  std::vector<double> K_, D_, B_, dvec_, p_, q_, c_;
  std::vector<T> p_t_, c_t_;  // p_ and c_ in T for the BLAS passes
};

class MFac : public Optimizer {
 public:
  MFac(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params);

  std::string name() const override { return "mfac"; }
  void step(std::span<const ParamRef> params, std::int64_t step, double lr) override;
  // "momentum" (d floats), per block b "block<b>/G", "block<b>/K", "block<b>/slot", "block<b>/count".
  StateDict state() const override;
  void load_state(const StateDict& state) override;

  std::size_t block_count() const { return windows_.size(); }

 private:
  std::vector<nn::ParamInfo> params_;
  std::size_t dim_ = 0;
  std::vector<std::size_t> block_start_;  // block b covers [block_start_[b], block_start_[b+1])
  std::vector<MfacWindow<float>> windows_;
  std::vector<float> flat_, update_, momentum_;
  double mu_ = 0.0;
  bool coupled_ = true;
};

extern template class MfacWindow<float>;
extern template class MfacWindow<double>;

}  // namespace expt::optim
