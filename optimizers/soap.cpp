#include "optimizers/soap.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>
#include <utility>

#include "core/comm/communicator.hpp"
#include "kernels/gemm.hpp"
#include "optimizers/hybrid_routing.hpp"

namespace expt::optim {

namespace {

using kernels::gemm;
using kernels::Trans;
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr std::size_t kReplicated = static_cast<std::size_t>(-1);

// Cuts [0, size) into chunks of `block` (the last one shorter); one chunk when block is 0 or
// the axis is not preconditioned.
void to_float(const std::vector<double>& src, std::vector<float>& dst) {
  std::transform(src.begin(), src.end(), dst.begin(), [](double x) { return static_cast<float>(x); });
}

// Copies the upper triangle of the size x size row-major P over its lower triangle.
void mirror_upper(std::span<double> P, int size) {
  for (int i = 1; i < size; ++i)
    for (int j = 0; j < i; ++j) P[static_cast<std::size_t>(i) * size + j] = P[static_cast<std::size_t>(j) * size + i];
}

std::vector<std::pair<int, int>> chunks(int size, int block, bool cut) {
  std::vector<std::pair<int, int>> out;
  if (!cut || block <= 0 || size <= block) return {{0, size}};
  for (int start = 0; start < size; start += block) out.emplace_back(start, std::min(block, size - start));
  return out;
}

}  // namespace

OptimizerMemory Soap::memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) {
  OptimizerMemory mem;
  const int dmax = cfg.max_precond_dim;
  std::set<int> sides;
  double largest = 0, largest_side = 0;
  for (const auto& p : params) {
    mem.state += 16.0;  // t, initialized
    // The constructor's layout: merge_dims, preconditioned sides, blocks.
    const bool merged = cfg.merge_dims && p.shape.size() == 2 && p.size <= static_cast<std::size_t>(dmax);
    const bool matrix = p.shape.size() == 2 && !merged;
    const int rows = matrix ? static_cast<int>(p.rows()) : 1;
    const int cols = matrix ? static_cast<int>(p.cols()) : static_cast<int>(p.size);
    const bool left = matrix && rows <= dmax;
    const bool right = merged || (matrix && cols <= dmax && !(cfg.one_sided && left));
    for (auto [r0, rn] : chunks(rows, cfg.block_size, left))
      for (auto [c0, cn] : chunks(cols, cfg.block_size, right)) {
        const double h = rn, w = cn;
        mem.state += 2.0 * sizeof(double) * h * w;
        for (auto [on, s] : {std::pair{left, h}, std::pair{right, w}}) {
          if (!on) continue;
          mem.state += 2.0 * sizeof(double) * s * s;
          mem.scratch += sizeof(float) * s * s;
          if (sides.insert(static_cast<int>(s)).second) mem.scratch += sizeof(double) * (2.0 * s * s + 3.0 * s);
          largest_side = std::max(largest_side, s);
        }
        largest = std::max(largest, h * w);
      }
  }
  const double s2 = largest_side * largest_side;
  mem.scratch += sizeof(double) * (4.0 * largest + s2 + std::max(largest, s2) + largest_side) +
                 sizeof(float) * (3.0 * largest + s2) + sizeof(int) * largest_side;
  return mem;
}

Soap::Soap(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) : params_(params) {
  if (!(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0) || !(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0))
    throw std::invalid_argument("soap: beta1 and beta2 must be in [0, 1)");
  if (!(cfg.shampoo_beta < 1.0)) throw std::invalid_argument("soap: shampoo_beta must be < 1");
  if (cfg.precondition_frequency < 1) throw std::invalid_argument("soap: precondition_frequency must be >= 1");
  if (cfg.max_precond_dim < 1 || cfg.block_size < 0)
    throw std::invalid_argument("soap: bad max_precond_dim/block_size");
  beta1_ = cfg.beta1;
  beta2_ = cfg.beta2;
  shampoo_beta_ = cfg.shampoo_beta < 0.0 ? cfg.beta2 : cfg.shampoo_beta;
  eps_ = cfg.eps;
  frequency_ = cfg.precondition_frequency;
  const std::vector<GroupRule> rules = {{"soap", {}, "", 1.0, cfg.weight_decay}};
  groups_ = build_param_groups(rules, params_);

  const int dmax = cfg.max_precond_dim;
  std::size_t largest = 0, largest_side = 0;
  for (const auto& p : params_) {
    ParamState ps;
    ps.first_block = blocks_.size();
    // merge_dims (the original SOAP's): a 2-D m x n matrix with m·n <= max_precond_dim becomes one
    // axis of m·n entries (row-major, 1 x m·n) with its own full m·n x m·n preconditioner on the
    // right; larger matrices keep their two axes (merging either with the other would exceed it).
    const bool merged = cfg.merge_dims && p.shape.size() == 2 && p.size <= static_cast<std::size_t>(dmax);
    const bool matrix = p.shape.size() == 2 && !merged;
    ps.rows = matrix ? static_cast<int>(p.rows()) : 1;
    ps.cols = matrix ? static_cast<int>(p.cols()) : static_cast<int>(p.size);
    const bool left = matrix && ps.rows <= dmax;
    const bool right = merged || (matrix && ps.cols <= dmax && !(cfg.one_sided && left));
    for (auto [r0, rn] : chunks(ps.rows, cfg.block_size, left))
      for (auto [c0, cn] : chunks(ps.cols, cfg.block_size, right)) {
        Block b;
        b.row0 = r0, b.rows = rn, b.col0 = c0, b.cols = cn, b.left = left, b.right = right;
        allocate(b, true);
        if (left) {
          largest_side = std::max<std::size_t>(largest_side, rn);
          qr_.try_emplace(rn);
        }
        if (right) {
          largest_side = std::max<std::size_t>(largest_side, cn);
          qr_.try_emplace(cn);
        }
        largest = std::max(largest, static_cast<std::size_t>(rn) * cn);
        blocks_.push_back(std::move(b));
      }
    ps.block_count = blocks_.size() - ps.first_block;
    state_.push_back(ps);
    shard_slot_.push_back(left || right ? preconditioned_.size() : kReplicated);
    if (left || right) preconditioned_.push_back(state_.size() - 1);
  }
  shard_ = cfg.shard;
  for (auto& [size, ws] : qr_) {
    ws.qr = Eigen::HouseholderQR<Eigen::MatrixXd>(size, size);
    ws.q.resize(size, size);
    ws.work.resize(size);
  }
  for (auto* buffer : {&g_, &tmp_, &rotated_, &direction_}) buffer->assign(largest, 0.0);
  pq_.assign(largest_side * largest_side, 0.0);
  ev_.assign(largest_side, 0.0);
  perm_scratch_.assign(std::max(largest, largest_side * largest_side), 0.0);
  order_.assign(largest_side, 0);
  for (auto* buffer : {&rotated_f_, &tmp_f_, &direction_f_}) buffer->assign(largest, 0.0f);
  stat_f_.assign(largest_side * largest_side, 0.0f);

  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].name;
    add_scalar(name + "/t", state_[i].t);
    add_state<std::int64_t>(name + "/initialized", {}, 1,
                            {[this, i](std::span<std::int64_t> out) { out[0] = state_[i].initialized ? 1 : 0; },
                             [this, i](std::span<const std::int64_t> in) { state_[i].initialized = in[0] != 0; }});
    // Sharded: the owner's blocks (a non-owner holds none of their vectors).
    const MatrixOwnership* owner = shard_slot_[i] != kReplicated ? &ownership_ : nullptr;
    const std::size_t slot = shard_slot_[i];
    for (std::size_t bi = 0; bi < state_[i].block_count; ++bi) {
      const std::size_t g = state_[i].first_block + bi;
      const Block& b = blocks_[g];
      const std::string prefix = name + "/" + std::to_string(bi) + "/";
      const auto entry = [&](const char* key, std::vector<double> Block::*member, int rows, int cols, bool statistic) {
        // The fast path keeps only the upper triangle of L and R current between refreshes.
        std::function<void(std::span<double>)> finish;
        if (statistic)
          finish = [this, rows](std::span<double> P) {
            if (!reference_) mirror_upper(P, rows);
          };
        add_array<double>(
            prefix + key, {rows, cols}, [this, g, member] { return std::span<double>(blocks_[g].*member); }, owner,
            slot, nullptr, std::move(finish));
      };
      entry("M", &Block::M, b.rows, b.cols, false);
      entry("V", &Block::V, b.rows, b.cols, false);
      if (b.left) {
        entry("L", &Block::L, b.rows, b.rows, true);
        entry("QL", &Block::QL, b.rows, b.rows, false);
      }
      if (b.right) {
        entry("R", &Block::R, b.cols, b.cols, true);
        entry("QR", &Block::QR, b.cols, b.cols, false);
      }
    }
  }
}

void Soap::after_load() {
  for (Block& b : blocks_) {
    to_float(b.QL, b.QLf);
    to_float(b.QR, b.QRf);
  }
}

void Soap::allocate(Block& b, bool keep) {
  const auto sized = [keep](std::vector<double>& v, std::size_t size) {
    v.assign(keep ? size : 0, 0.0);
    v.shrink_to_fit();
  };
  const std::size_t h = static_cast<std::size_t>(b.rows), w = static_cast<std::size_t>(b.cols);
  sized(b.M, h * w);
  sized(b.V, h * w);
  sized(b.L, b.left ? h * h : 0);
  sized(b.QL, b.left ? h * h : 0);
  sized(b.R, b.right ? w * w : 0);
  sized(b.QR, b.right ? w * w : 0);
  b.QLf.assign(keep && b.left ? h * h : 0, 0.0f);
  b.QLf.shrink_to_fit();
  b.QRf.assign(keep && b.right ? w * w : 0, 0.0f);
  b.QRf.shrink_to_fit();
}

double Soap::preconditioned_cost(std::size_t i) const {
  double cost = 0.0;
  for (const Block& b : blocks(i)) {
    const double h = b.rows, w = b.cols, rotation = h * h * w + h * w * w;
    double sides = 0.0;
    if (b.left) sides += h * h * h;
    if (b.right) sides += w * w * w;
    cost += 1.25 * rotation + (rotation + (1.0 + 4.0 / 3.0) * sides) / frequency_;
  }
  return cost;
}

void Soap::set_communicator(comm::Communicator* comm) {
  std::vector<double> cost;
  for (std::size_t i : preconditioned_) cost.push_back(preconditioned_cost(i));
  ownership_.assign(comm, shard_, cost);
  for (std::size_t k = 0; k < preconditioned_.size(); ++k) {
    const ParamState& ps = state_[preconditioned_[k]];
    for (std::size_t bi = 0; bi < ps.block_count; ++bi) allocate(blocks_[ps.first_block + bi], ownership_.owns(k));
  }
}

std::span<const Soap::Block> Soap::blocks(std::size_t i) const {
  return {blocks_.data() + state_.at(i).first_block, state_.at(i).block_count};
}

void Soap::rotate(const Block& b, const double* src, double* dst, bool to_basis) {
  const int h = b.rows, w = b.cols;
  const std::size_t area = static_cast<std::size_t>(h) * w;
  // Left factor: to_basis Q_Lᵀ·X, back Q_L·X.
  const double* after_left = src;
  if (b.left) {
    gemm<double>(to_basis ? Trans::yes : Trans::no, Trans::no, h, w, h, 1.0, b.QL.data(), h, src, w, 0.0, tmp_.data(),
                 w);
    after_left = tmp_.data();
  }
  // Right factor: to_basis X·Q_R, back X·Q_Rᵀ.
  if (b.right) {
    gemm<double>(Trans::no, to_basis ? Trans::no : Trans::yes, h, w, w, 1.0, after_left, w, b.QR.data(), w, 0.0, dst,
                 w);
  } else if (after_left != dst) {
    std::copy(after_left, after_left + area, dst);
  }
}

void Soap::rotate_float(const Block& b, const float* src, int lds, float* dst, bool to_basis) {
  const int h = b.rows, w = b.cols;
  // Left factor: to_basis Q_Lᵀ·X, back Q_L·X (h x w into tmp_f_, row stride w).
  const float* after_left = src;
  int ld = lds;
  if (b.left) {
    gemm<float>(to_basis ? Trans::yes : Trans::no, Trans::no, h, w, h, 1.0f, b.QLf.data(), h, src, lds, 0.0f,
                tmp_f_.data(), w);
    after_left = tmp_f_.data();
    ld = w;
  }
  // Right factor: to_basis X·Q_R, back X·Q_Rᵀ.
  if (b.right) {
    gemm<float>(Trans::no, to_basis ? Trans::no : Trans::yes, h, w, w, 1.0f, after_left, ld, b.QRf.data(), w, 0.0f, dst,
                w);
  } else if (after_left != dst) {
    for (int r = 0; r < h; ++r)
      std::copy_n(after_left + static_cast<std::size_t>(r) * ld, w, dst + static_cast<std::size_t>(r) * w);
  }
}

void Soap::accumulate_statistics(std::vector<double>& P, const float* g, int ldg, int rows, int cols, bool rows_axis,
                                 double keep) {
  const int size = rows_axis ? rows : cols;
  // The float product of float gradients rounds each sum once in float (relative 2^-24·inner
  // length at worst); the eigenbases only need L and R to that accuracy, and the EMA is in double.
  if (rows_axis)
    kernels::syrk_upper<float>(rows, cols, 1.0f, g, ldg, 0.0f, stat_f_.data(), size);
  else
    kernels::syrk_upper_trans<float>(cols, rows, 1.0f, g, ldg, 0.0f, stat_f_.data(), size);
  const double scale = 1.0 - shampoo_beta_;
  for (int i = 0; i < size; ++i) {
    double* p = P.data() + static_cast<std::size_t>(i) * size;
    const float* x = stat_f_.data() + static_cast<std::size_t>(i) * size;
    if (keep == 0.0)
      for (int j = i; j < size; ++j) p[j] = scale * static_cast<double>(x[j]);
    else
      for (int j = i; j < size; ++j) p[j] = keep * p[j] + scale * static_cast<double>(x[j]);
  }
}

void Soap::init_side(std::vector<double>& P, std::vector<double>& Q, int size) {
  Eigen::Map<RowMat> p(P.data(), size, size);
  Eigen::Map<RowMat> q(Q.data(), size, size);
  const double trace = p.trace();
  if (!(trace > 0.0)) {  // zero gradient: no information yet, start from the identity basis
    q.setIdentity();
    return;
  }
  RowMat sym = 0.5 * (p + p.transpose());
  sym.diagonal().array() += 1e-12 * trace / size;
  Eigen::SelfAdjointEigenSolver<RowMat> solver(sym);
  if (solver.info() != Eigen::Success) throw std::runtime_error("soap: eigendecomposition failed");
  // Eigen returns ascending eigenvalues; SOAP wants them descending.
  q = solver.eigenvectors().rowwise().reverse();
}

void Soap::refresh_side(const std::vector<double>& P, std::vector<double>& Q, int size, Block& b, bool rows_axis) {
  double norm_sq = 0.0;
  for (std::size_t k = 0; k < static_cast<std::size_t>(size) * size; ++k) norm_sq += P[k] * P[k];
  if (norm_sq == 0.0) return;  // zero-statistic guard: nothing to iterate on, keep the basis
  // PQ = P·Q; e_j = q_jᵀ (P q_j), the Rayleigh quotients.
  gemm<double>(Trans::no, Trans::no, size, size, size, 1.0, P.data(), size, Q.data(), size, 0.0, pq_.data(), size);
  for (int j = 0; j < size; ++j) ev_[j] = 0.0;
  for (int i = 0; i < size; ++i)
    for (int j = 0; j < size; ++j)
      ev_[j] += Q[static_cast<std::size_t>(i) * size + j] * pq_[static_cast<std::size_t>(i) * size + j];
  std::iota(order_.begin(), order_.begin() + size, 0);
  // Descending, ties by index (std::sort, unlike stable_sort, needs no temporary buffer).
  std::sort(order_.begin(), order_.begin() + size,
            [&](int a, int c) { return ev_[a] > ev_[c] || (ev_[a] == ev_[c] && a < c); });

  // Permute V along this axis: new index j takes old index order_[j].
  const int h = b.rows, w = b.cols;
  std::copy(b.V.begin(), b.V.end(), perm_scratch_.begin());
  if (rows_axis) {
    for (int j = 0; j < h; ++j)
      std::copy_n(perm_scratch_.data() + static_cast<std::size_t>(order_[j]) * w, w,
                  b.V.data() + static_cast<std::size_t>(j) * w);
  } else {
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j)
        b.V[static_cast<std::size_t>(i) * w + j] = perm_scratch_[static_cast<std::size_t>(i) * w + order_[j]];
  }

  // Power step on the permuted basis: P·Q[:, π] = (P·Q)[:, π], then Q = thin_QR(·).Q.
  QrWorkspace& ws = qr_.at(size);
  Eigen::MatrixXd& a = ws.q;
  for (int i = 0; i < size; ++i)
    for (int j = 0; j < size; ++j) a(i, j) = pq_[static_cast<std::size_t>(i) * size + order_[j]];
  ws.qr.compute(a);
  ws.qr.householderQ().evalTo(a, ws.work);
  for (int i = 0; i < size; ++i)
    for (int j = 0; j < size; ++j) Q[static_cast<std::size_t>(i) * size + j] = a(i, j);
}

void Soap::step(std::span<const ParamRef> params, std::int64_t /*step: the per-parameter t is used*/, double lr) {
  check_param_refs("soap", params, params_);
  const ParamGroup& group = groups_.front();
  const double lr_g = lr * group.lr_scale;

  for (std::size_t i = 0; i < params_.size(); ++i) {
    ParamState& ps = state_[i];
    const float* grad = params[i].grad;
    float* value = params[i].value;
    const bool first_call = !ps.initialized;
    std::int64_t t = ps.t;
    if (!first_call) t = ++ps.t;
    const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(t));
    const double alpha = first_call ? 0.0 : lr_g * std::sqrt(bc2) / bc1;
    const bool refresh = !first_call && t % frequency_ == 0;
    if (shard_slot_[i] != kReplicated && !ownership_.owns(shard_slot_[i])) {  // the owner broadcasts it below
      ps.initialized = true;
      continue;
    }

    const double decay = 1.0 - lr_g * group.weight_decay;
    for (std::size_t bi = 0; bi < ps.block_count; ++bi) {
      Block& b = blocks_[ps.first_block + bi];
      const std::size_t offset = static_cast<std::size_t>(b.row0) * ps.cols + b.col0;
      if (reference_)
        step_block_reference(b, grad + offset, ps.cols, value + offset, first_call, refresh, alpha, decay);
      else
        step_block(b, grad + offset, ps.cols, value + offset, first_call, refresh, alpha, decay);
    }
    ps.initialized = true;
  }
  if (ownership_.sharded())
    for (std::size_t k = 0; k < preconditioned_.size(); ++k) {
      const std::size_t i = preconditioned_[k];
      ownership_.share(k, std::span<float>(params[i].value, params_[i].size));
    }
}

void Soap::step_block(Block& b, const float* grad, int ldg, float* value, bool first_call, bool refresh, double alpha,
                      double decay) {
  const int h = b.rows, w = b.cols;
  const std::size_t area = static_cast<std::size_t>(h) * w;
  if (first_call) {
    // I1, I2: statistics from this gradient, exact eigenbases; the parameter is not touched.
    if (b.left) {
      accumulate_statistics(b.L, grad, ldg, h, w, true, 0.0);
      mirror_upper(b.L, h);
      init_side(b.L, b.QL, h);
      to_float(b.QL, b.QLf);
    }
    if (b.right) {
      accumulate_statistics(b.R, grad, ldg, h, w, false, 0.0);
      mirror_upper(b.R, w);
      init_side(b.R, b.QR, w);
      to_float(b.QR, b.QRf);
    }
    return;
  }
  if (!b.left && !b.right) {  // Adam alone, in double as the reference (no rotation to round)
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        const std::size_t k = static_cast<std::size_t>(r) * w + c;
        const double g = grad[static_cast<std::size_t>(r) * ldg + c];
        b.M[k] = beta1_ * b.M[k] + (1.0 - beta1_) * g;
        b.V[k] = beta2_ * b.V[k] + (1.0 - beta2_) * g * g;
        float& x = value[static_cast<std::size_t>(r) * ldg + c];
        x = static_cast<float>((static_cast<double>(x) - alpha * (b.M[k] / (std::sqrt(b.V[k]) + eps_))) * decay);
      }
    return;
  }

  // S1-S4: Adam in the eigenbasis; Ĝ by float rotations, the moments in double.
  rotate_float(b, grad, ldg, rotated_f_.data(), true);
  for (std::size_t k = 0; k < area; ++k) {
    const double gh = rotated_f_[k];
    b.M[k] = beta1_ * b.M[k] + (1.0 - beta1_) * gh;
    b.V[k] = beta2_ * b.V[k] + (1.0 - beta2_) * gh * gh;
    rotated_f_[k] = static_cast<float>(b.M[k] / (std::sqrt(b.V[k]) + eps_));
  }
  // S6, S8, S9: back to parameter space, step, decay after the step.
  rotate_float(b, rotated_f_.data(), w, direction_f_.data(), false);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      float& x = value[static_cast<std::size_t>(r) * ldg + c];
      x = static_cast<float>(
          (static_cast<double>(x) - alpha * static_cast<double>(direction_f_[static_cast<std::size_t>(r) * w + c])) *
          decay);
    }

  // S10: statistics, and on refresh steps the basis change (L, R, the product P·Q and the QR in double).
  if (b.left) accumulate_statistics(b.L, grad, ldg, h, w, true, shampoo_beta_);
  if (b.right) accumulate_statistics(b.R, grad, ldg, h, w, false, shampoo_beta_);
  if (refresh) {
    // M_orig = Q_L M Q_Rᵀ and back into the new basis with the float bases: orthogonal rotations
    // that round M by 2^-24 relatively, as every step's Ĝ.
    to_float(b.M, rotated_f_);
    rotate_float(b, rotated_f_.data(), w, direction_f_.data(), false);
    if (b.left) {
      mirror_upper(b.L, h);
      refresh_side(b.L, b.QL, h, b, true);
      to_float(b.QL, b.QLf);
    }
    if (b.right) {
      mirror_upper(b.R, w);
      refresh_side(b.R, b.QR, w, b, false);
      to_float(b.QR, b.QRf);
    }
    rotate_float(b, direction_f_.data(), w, rotated_f_.data(), true);
    std::copy_n(rotated_f_.begin(), area, b.M.begin());
  }
}

void Soap::step_block_reference(Block& b, const float* grad, int ldg, float* value, bool first_call, bool refresh,
                                double alpha, double decay) {
  const int h = b.rows, w = b.cols;
  const std::size_t area = static_cast<std::size_t>(h) * w;
  const double one_minus_bs = 1.0 - shampoo_beta_;
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) g_[static_cast<std::size_t>(r) * w + c] = grad[static_cast<std::size_t>(r) * ldg + c];

  if (first_call) {  // I1, I2

    if (b.left) {
      gemm<double>(Trans::no, Trans::yes, h, h, w, one_minus_bs, g_.data(), w, g_.data(), w, 0.0, b.L.data(), h);
      init_side(b.L, b.QL, h);
    }
    if (b.right) {
      gemm<double>(Trans::yes, Trans::no, w, w, h, one_minus_bs, g_.data(), w, g_.data(), w, 0.0, b.R.data(), w);
      init_side(b.R, b.QR, w);
    }
    return;
  }

  // S1-S4: Adam in the eigenbasis.
  rotate(b, g_.data(), rotated_.data(), true);
  for (std::size_t k = 0; k < area; ++k) {
    const double gh = rotated_[k];
    b.M[k] = beta1_ * b.M[k] + (1.0 - beta1_) * gh;
    b.V[k] = beta2_ * b.V[k] + (1.0 - beta2_) * gh * gh;
    rotated_[k] = b.M[k] / (std::sqrt(b.V[k]) + eps_);
  }
  // S6, S8, S9: back to parameter space, step, decay after the step.
  rotate(b, rotated_.data(), direction_.data(), false);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      float& x = value[static_cast<std::size_t>(r) * ldg + c];
      x = static_cast<float>((static_cast<double>(x) - alpha * direction_[static_cast<std::size_t>(r) * w + c]) *
                             decay);
    }

  // S10: statistics (full dgemms), and on refresh steps the basis change with M carried in double.
  if (b.left)
    gemm<double>(Trans::no, Trans::yes, h, h, w, one_minus_bs, g_.data(), w, g_.data(), w, shampoo_beta_, b.L.data(),
                 h);
  if (b.right)
    gemm<double>(Trans::yes, Trans::no, w, w, h, one_minus_bs, g_.data(), w, g_.data(), w, shampoo_beta_, b.R.data(),
                 w);
  if (refresh && (b.left || b.right)) {
    rotate(b, b.M.data(), direction_.data(), false);  // M_orig = Q_L M Q_Rᵀ
    if (b.left) refresh_side(b.L, b.QL, h, b, true);
    if (b.right) refresh_side(b.R, b.QR, w, b, false);
    rotate(b, direction_.data(), b.M.data(), true);
  }
}

}  // namespace expt::optim
