#include "optimizers/mfac.hpp"

#include <algorithm>
#include <cmath>
#include <new>
#include <stdexcept>

#include "core/comm/communicator.hpp"
#include "kernels/gemm.hpp"
#include "optimizers/hybrid_routing.hpp"

namespace expt::optim {

using kernels::gemm;
using kernels::Trans;

namespace {

// out = A v for A (rows x cols, row-major) in T, v in T, out in double (rows). No BLAS call when
// cols == 0 (a rank without columns of this window contributes zeros).
template <class T>
void project_rows(const T* A, int rows, std::size_t cols, const T* v, T* tmp, double* out) {
  if (cols == 0) {
    std::fill(out, out + rows, 0.0);
    return;
  }
  gemm<T>(Trans::no, Trans::no, rows, 1, static_cast<int>(cols), T(1), A, static_cast<int>(cols), v, 1, T(0), tmp, 1);
  for (int i = 0; i < rows; ++i) out[i] = static_cast<double>(tmp[i]);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// MfacWindow: Woodbury with an incrementally updated Cholesky factor.

template <class T>
MfacWindow<T>::MfacWindow(int window, std::size_t dim, double damping) : m_(window), d_(dim), eps_(1.0 / damping) {
  if (window < 1) throw std::invalid_argument("mfac: window must be >= 1");
  if (!(damping > 0.0)) throw std::invalid_argument("mfac: damping must be > 0");
  const std::size_t n = std::max<std::size_t>(static_cast<std::size_t>(m_) * d_, 1);
  G_.reset(static_cast<T*>(std::calloc(n, sizeof(T))));
  if (!G_) throw std::bad_alloc();
  // Empty window: A = m·I, R = sqrt(m)·I.
  R_.assign(static_cast<std::size_t>(m_) * m_, 0.0);
  for (int i = 0; i < m_; ++i) R_[static_cast<std::size_t>(i) * m_ + i] = std::sqrt(static_cast<double>(m_));
  work_.assign(m_, 0.0);
  u_.assign(m_, 0.0);
  k_.assign(m_, 0.0);
  t_m_.assign(m_, T(0));
}

template <class T>
void MfacWindow<T>::write_gradient(const T* g, double* k) {
  std::copy(g, g + d_, G_.get() + static_cast<std::size_t>(slot_) * d_);
  project_rows(G_.get(), m_, d_, g, t_m_.data(), k);
}

template <class T>
void MfacWindow<T>::update_factor(const double* k) {
  const int m = m_;
  double* R = R_.data();
  auto at = [m](int i, int j) { return static_cast<std::size_t>(i) * m + j; };
  // 1. Drop chronological row/column 0: A₂₂ = R₂₂ᵀR₂₂ + x xᵀ with x = R[0, 1:]. Column k of the
  //    rank-1 update: r = hypot(R_kk, x_k), c = r/R_kk, s = x_k/R_kk, R_kk ← r,
  //    R_ki ← (R_ki + s·x_i)/c, x_i ← c·x_i − s·R_ki (i > k). New row k is written one row up and
  //    one column left of old row k+1; old row k was consumed by the previous k, so in place is safe.
  double* x = work_.data();
  for (int j = 0; j + 1 < m; ++j) x[j] = R[at(0, j + 1)];
  for (int kk = 0; kk + 1 < m; ++kk) {
    const double rkk = R[at(kk + 1, kk + 1)];
    const double r = std::hypot(rkk, x[kk]);
    const double c = r / rkk, s = x[kk] / rkk;
    R[at(kk, kk)] = r;
    const double* old_row = R + at(kk + 1, 1);  // old R[kk+1, i+1] at old_row[i]
    double* new_row = R + at(kk, 0);
    for (int i = kk + 1; i + 1 < m; ++i) {
      const double v = (old_row[i] + s * x[i]) / c;
      x[i] = c * x[i] - s * v;
      new_row[i] = v;
    }
  }
  // 2. Append the new gradient as chronological index m−1 (its slot s; the older slots follow s).
  //    Rᵀ w = b (b_j = ε·k[(s+1+j) mod m]), column-oriented forward substitution, w into column m−1.
  const int s = slot_;
  double* t = work_.data();
  for (int j = 0; j + 1 < m; ++j) t[j] = eps_ * k[(s + 1 + j) % m];
  double ww = 0.0;
  for (int i = 0; i + 1 < m; ++i) {
    const double w = t[i] / R[at(i, i)];
    const double* row = R + at(i, 0);
    for (int j = i + 1; j + 1 < m; ++j) t[j] -= row[j] * w;
    R[at(i, m - 1)] = w;
    ww += w * w;
  }
  // The Schur complement ε·k_s + m − wᵀw is >= m in exact arithmetic; the floor only guards rounding.
  R[at(m - 1, m - 1)] = std::sqrt(std::max(eps_ * k[s] + m - ww, static_cast<double>(m) * 0.5));
  slot_ = (slot_ + 1) % m_;
  count_ = std::min(count_ + 1, m_);
}

template <class T>
void MfacWindow<T>::project(const T* x, double* p) {
  project_rows(G_.get(), m_, d_, x, t_m_.data(), p);
}

template <class T>
void MfacWindow<T>::apply(const double* p, const T* x, T* y) {
  const int m = m_;
  const double* R = R_.data();
  auto at = [m](int i, int j) { return static_cast<std::size_t>(i) * m + j; };
  // u = A⁻¹ p in chronological order: Rᵀ z = p (column-oriented forward), then R u = z (back, rows).
  double* u = u_.data();
  for (int j = 0; j < m; ++j) u[j] = p[(slot_ + j) % m];
  for (int i = 0; i < m; ++i) {
    u[i] /= R[at(i, i)];
    const double* row = R + at(i, 0);
    for (int j = i + 1; j < m; ++j) u[j] -= row[j] * u[i];
  }
  for (int i = m - 1; i >= 0; --i) {
    const double* row = R + at(i, 0);
    double acc = u[i];
    for (int j = i + 1; j < m; ++j) acc -= row[j] * u[j];
    u[i] = acc / row[i];
  }
  // c = ε²·u back in slot order; y = ε·x − Gᵀ c.
  const double eps2 = eps_ * eps_;
  for (int j = 0; j < m; ++j) t_m_[(slot_ + j) % m] = static_cast<T>(eps2 * u[j]);
  const T eps = static_cast<T>(eps_);
  for (std::size_t k = 0; k < d_; ++k) y[k] = eps * x[k];
  if (d_ > 0)
    gemm<T>(Trans::yes, Trans::no, static_cast<int>(d_), 1, m, T(-1), G_.get(), static_cast<int>(d_), t_m_.data(), 1,
            T(1), y, 1);
}

template <class T>
void MfacWindow<T>::insert(const T* g, comm::Communicator* comm) {
  write_gradient(g, k_.data());
  if (comm != nullptr) comm->allreduce_sum(std::span<double>(k_));
  update_factor(k_.data());
}

template <class T>
void MfacWindow<T>::ihvp(const T* x, T* y, comm::Communicator* comm) {
  project(x, k_.data());
  if (comm != nullptr) comm->allreduce_sum(std::span<double>(k_));
  apply(k_.data(), x, y);
}

template <class T>
void MfacWindow<T>::insert_and_ihvp(const T* g, T* y, comm::Communicator* comm) {
  insert(g, comm);  // leaves k_ = G g
  apply(k_.data(), g, y);
}

template <class T>
void MfacWindow<T>::restore_gradients(std::span<const T> G, std::size_t full_dim, std::size_t first_col) {
  if (G.size() != static_cast<std::size_t>(m_) * full_dim || first_col + d_ > full_dim)
    throw std::runtime_error("mfac state: window of the wrong shape");
  for (int i = 0; i < m_; ++i)
    std::copy_n(G.data() + static_cast<std::size_t>(i) * full_dim + first_col, d_,
                G_.get() + static_cast<std::size_t>(i) * d_);
}

template <class T>
void MfacWindow<T>::restore_factor(std::span<const double> R) {
  if (R.size() != R_.size()) throw std::runtime_error("mfac state: factor of the wrong shape");
  std::copy(R.begin(), R.end(), R_.begin());
}

template <class T>
void MfacWindow<T>::restore_position(int slot, int count) {
  if (slot < 0 || slot >= m_ || count < 0 || count > m_)
    throw std::runtime_error("mfac state: window position out of range");
  slot_ = slot;
  count_ = count;
}

template class MfacWindow<float>;
template class MfacWindow<double>;

// ---------------------------------------------------------------------------------------------
// MfacReferenceWindow: the dynamic coefficient algorithm of 4.4, refactorised after every insert.

template <class T>
MfacReferenceWindow<T>::MfacReferenceWindow(int window, std::size_t dim, double damping)
    : m_(window), d_(dim), eps_(1.0 / damping) {
  if (window < 1) throw std::invalid_argument("mfac: window must be >= 1");
  if (!(damping > 0.0)) throw std::invalid_argument("mfac: damping must be > 0");
  const std::size_t mm = static_cast<std::size_t>(m_) * m_;
  G_.assign(static_cast<std::size_t>(m_) * d_, T(0));
  K_.assign(mm, 0.0);
  D_.assign(mm, 0.0);
  B_.assign(mm, 0.0);
  for (auto* v : {&dvec_, &p_, &q_, &c_}) v->assign(m_, 0.0);
  p_t_.assign(m_, T(0));
  c_t_.assign(m_, T(0));
  factor();
}

template <class T>
void MfacReferenceWindow<T>::insert_row(const T* g) {
  const int s = slot_;
  std::copy(g, g + d_, G_.data() + static_cast<std::size_t>(s) * d_);
  // Gram row k = G g, then K[s, :] = K[:, s] = k.
  project_rows(G_.data(), m_, d_, g, p_t_.data(), p_.data());
  for (int j = 0; j < m_; ++j) {
    K_[static_cast<std::size_t>(s) * m_ + j] = p_[j];
    K_[static_cast<std::size_t>(j) * m_ + s] = p_[j];
  }
  slot_ = (slot_ + 1) % m_;
}

template <class T>
void MfacReferenceWindow<T>::factor() {
  const int m = m_;
  auto at = [m](std::vector<double>& a, int i, int j) -> double& { return a[static_cast<std::size_t>(i) * m + j]; };
  // D row by row (Doolittle on εK + m·I without pivoting; the matrix is SPD).
  for (int j = 0; j < m; ++j) {
    for (int i = j; i < m; ++i) {
      double acc = eps_ * at(K_, j, i);
      for (int k = 0; k < j; ++k) acc -= at(D_, k, j) * at(D_, k, i) / dvec_[k];
      at(D_, j, i) = acc;
    }
    dvec_[j] = m + at(D_, j, j);
  }
  // B: lower triangular, B_ii = ε, B_ik = Σ_{j=k}^{i−1} (−D_ji/d_j)·B_jk.
  for (int i = 0; i < m; ++i) {
    for (int k = 0; k < i; ++k) {
      double acc = 0.0;
      for (int j = k; j < i; ++j) acc -= at(D_, j, i) / dvec_[j] * at(B_, j, k);
      at(B_, i, k) = acc;
    }
    at(B_, i, i) = eps_;
    for (int k = i + 1; k < m; ++k) at(B_, i, k) = 0.0;
  }
}

template <class T>
void MfacReferenceWindow<T>::apply(const T* x, T* y) {
  const int m = m_;
  // q_i = ε·p_i − Σ_{j<i} (D_ji/d_j)·q_j (forward substitution).
  for (int i = 0; i < m; ++i) {
    double acc = eps_ * p_[i];
    for (int j = 0; j < i; ++j) acc -= D_[static_cast<std::size_t>(j) * m + i] / dvec_[j] * q_[j];
    q_[i] = acc;
  }
  // c_k = Σ_{i ≥ k} (q_i/d_i)·B_ik.
  for (int k = 0; k < m; ++k) {
    double acc = 0.0;
    for (int i = k; i < m; ++i) acc += q_[i] / dvec_[i] * B_[static_cast<std::size_t>(i) * m + k];
    c_[k] = acc;
    c_t_[k] = static_cast<T>(acc);
  }
  // y = ε·x − Gᵀ c.
  const T eps = static_cast<T>(eps_);
  for (std::size_t k = 0; k < d_; ++k) y[k] = eps * x[k];
  gemm<T>(Trans::yes, Trans::no, static_cast<int>(d_), 1, m, T(-1), G_.data(), static_cast<int>(d_), c_t_.data(), 1,
          T(1), y, 1);
}

template <class T>
void MfacReferenceWindow<T>::insert(const T* g) {
  insert_row(g);
  factor();
}

template <class T>
void MfacReferenceWindow<T>::ihvp(const T* x, T* y) {
  project_rows(G_.data(), m_, d_, x, p_t_.data(), p_.data());
  apply(x, y);
}

template <class T>
void MfacReferenceWindow<T>::insert_and_ihvp(const T* g, T* y) {
  insert_row(g);
  factor();
  apply(g, y);
}

template class MfacReferenceWindow<float>;
template class MfacReferenceWindow<double>;

// ---------------------------------------------------------------------------------------------
// MFac, the optimizer.

OptimizerMemory MFac::memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) {
  double dim = 0;
  for (const auto& p : params) dim += static_cast<double>(p.size);
  const double block = cfg.block_size > 0 ? cfg.block_size : std::max(dim, 1.0);
  const double blocks = std::ceil(dim / block), m = cfg.window;
  OptimizerMemory mem;
  mem.state = sizeof(float) * dim + sizeof(float) * m * dim + blocks * (sizeof(double) * m * m + 16.0);
  mem.scratch =
      2.0 * sizeof(float) * dim + blocks * (sizeof(double) * m + 3.0 * sizeof(double) * m + sizeof(float) * m);
  return mem;
}

MFac::MFac(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) : params_(params) {
  if (!(cfg.momentum >= 0.0 && cfg.momentum < 1.0)) throw std::invalid_argument("mfac: momentum must be in [0, 1)");
  if (cfg.block_size < 0) throw std::invalid_argument("mfac: block_size must be >= 0");
  if (cfg.window < 1) throw std::invalid_argument("mfac: window must be >= 1");
  if (!(cfg.damping > 0.0)) throw std::invalid_argument("mfac: damping must be > 0");
  mu_ = cfg.momentum;
  shard_ = cfg.shard;
  window_ = cfg.window;
  damping_ = cfg.damping;
  coupled_ = cfg.wd_mode == config::WdMode::coupled_l2;
  const std::vector<GroupRule> rules = {{"mfac", {}, "", 1.0, cfg.weight_decay}};
  groups_ = build_param_groups(rules, params_);
  for (const auto& p : params_) {
    param_start_.push_back(dim_);
    dim_ += p.size;
  }
  const std::size_t block =
      cfg.block_size > 0 ? static_cast<std::size_t>(cfg.block_size) : std::max<std::size_t>(dim_, 1);
  for (std::size_t start = 0; start < dim_; start += block) block_start_.push_back(start);
  block_start_.push_back(dim_);
  lo_ = 0;
  hi_ = dim_;
  build_windows();

  add_state<float>("momentum", {}, dim_,
                   {[this](std::span<float> out) {
                      if (comm_ == nullptr)
                        std::copy(momentum_.begin(), momentum_.end(), out.begin());
                      else
                        gather_flat(momentum_, out);
                    },
                    [this](std::span<const float> in) {
                      std::copy(in.begin() + static_cast<std::ptrdiff_t>(lo_),
                                in.begin() + static_cast<std::ptrdiff_t>(hi_), momentum_.begin());
                    }});
  const auto m = static_cast<std::int64_t>(window_);
  for (std::size_t b = 0; b + 1 < block_start_.size(); ++b) {
    const std::string prefix = "block" + std::to_string(b) + "/";
    const std::size_t n = block_start_[b + 1] - block_start_[b];
    add_state<float>(prefix + "G", {m, static_cast<std::int64_t>(n)}, static_cast<std::size_t>(m) * n,
                     {[this, b](std::span<float> out) { save_window(b, out); },
                      [this, b, n](std::span<const float> in) {
                        const std::size_t first_col =
                            windows_[b].dim() == 0 ? 0 : std::max(block_start_[b], lo_) - block_start_[b];
                        windows_[b].restore_gradients(in, n, first_col);
                      }});
    add_state<double>(prefix + "R", {m, m}, static_cast<std::size_t>(m * m),
                      {[this, b](std::span<double> out) {
                         const auto R = windows_[b].factor();
                         std::copy(R.begin(), R.end(), out.begin());
                       },
                       [this, b](std::span<const double> in) { windows_[b].restore_factor(in); }});
    // The ring position: slot in [0, m), count in [0, m].
    const auto in_range = [m](std::int64_t hi) {
      return [m, hi](std::span<const std::int64_t> v) -> std::optional<std::string> {
        if (v[0] >= 0 && v[0] <= m - 1 + hi) return std::nullopt;
        return "value " + std::to_string(v[0]) + " out of range [0, " + std::to_string(m - 1 + hi) + "]";
      };
    };
    add_state<std::int64_t>(prefix + "slot", {}, 1,
                            {[this, b](std::span<std::int64_t> out) { out[0] = windows_[b].next_slot(); },
                             [this, b](std::span<const std::int64_t> in) {
                               windows_[b].restore_position(static_cast<int>(in[0]), windows_[b].count());
                             },
                             in_range(0)});
    add_state<std::int64_t>(prefix + "count", {}, 1,
                            {[this, b](std::span<std::int64_t> out) { out[0] = windows_[b].count(); },
                             [this, b](std::span<const std::int64_t> in) {
                               windows_[b].restore_position(windows_[b].next_slot(), static_cast<int>(in[0]));
                             },
                             in_range(1)});
  }
}

void MFac::build_windows() {
  windows_.clear();
  for (std::size_t b = 0; b + 1 < block_start_.size(); ++b) {
    const std::size_t first = std::max(block_start_[b], lo_), last = std::min(block_start_[b + 1], hi_);
    windows_.emplace_back(window_, last > first ? last - first : 0, damping_);
  }
  const std::size_t local = hi_ - lo_;
  flat_.assign(local, 0.0f);
  update_.assign(local, 0.0f);
  momentum_.assign(local, 0.0f);
  gram_.assign(windows_.size() * static_cast<std::size_t>(window_), 0.0);
}

void MFac::set_communicator(comm::Communicator* comm) {
  if (started_) throw std::logic_error("mfac: set_communicator must come before the first step and load_state");
  const bool shard = comm != nullptr && comm->size() > 1 && shard_;
  comm_ = shard ? comm : nullptr;
  if (!shard) {
    lo_ = 0;
    hi_ = dim_;
    chunk_ = 0;
    send_.clear();
    recv_.clear();
  } else {
    const std::size_t ranks = static_cast<std::size_t>(comm->size()), r = static_cast<std::size_t>(comm->rank());
    chunk_ = (dim_ + ranks - 1) / ranks;
    lo_ = std::min(dim_, r * chunk_);
    hi_ = std::min(dim_, (r + 1) * chunk_);
    send_.assign(chunk_, 0.0f);
    recv_.assign(chunk_ * ranks, 0.0f);
  }
  build_windows();
}

void MFac::gather_flat(std::span<const float> local, std::span<float> full) const {
  // Rank r's columns start at r·chunk_, so the allgather's concatenation is the flat vector.
  std::fill(send_.begin(), send_.end(), 0.0f);
  std::copy(local.begin(), local.end(), send_.begin());
  comm_->allgather(std::span<const float>(send_), std::span<float>(recv_));
  std::copy_n(recv_.begin(), full.size(), full.begin());
}

void MFac::step(std::span<const ParamRef> params, std::int64_t /*step*/, double lr) {
  check_param_refs("mfac", params, params_);
  started_ = true;
  const ParamGroup& group = groups_.front();
  const double lr_g = lr * group.lr_scale;
  const float wd = static_cast<float>(group.weight_decay);
  // Visits this rank's columns [lo_, hi_) parameter by parameter: f(param i, first element, count,
  // offset into the local vectors).
  auto for_local = [&](auto&& f) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::size_t first = std::max(param_start_[i], lo_), last = std::min(param_start_[i] + params_[i].size, hi_);
      if (last > first) f(i, first - param_start_[i], last - first, first - lo_);
    }
  };
  // ĝ: the gradient, plus wd·θ when the decay is coupled.
  for_local([&](std::size_t i, std::size_t e0, std::size_t n, std::size_t at) {
    const float* g = params[i].grad + e0;
    const float* w = params[i].value + e0;
    for (std::size_t k = 0; k < n; ++k) flat_[at + k] = coupled_ ? g[k] + wd * w[k] : g[k];
  });
  // Insert and IHVP, every block's Gram row summed over the ranks in one allreduce.
  const std::size_t m = static_cast<std::size_t>(window_);
  auto local_offset = [&](std::size_t b) { return std::clamp(block_start_[b], lo_, hi_) - lo_; };
  for (std::size_t b = 0; b < windows_.size(); ++b)
    windows_[b].write_gradient(flat_.data() + local_offset(b), gram_.data() + b * m);
  if (comm_ != nullptr) comm_->allreduce_sum(std::span<double>(gram_));
  for (std::size_t b = 0; b < windows_.size(); ++b) {
    windows_[b].update_factor(gram_.data() + b * m);
    windows_[b].apply(gram_.data() + b * m, flat_.data() + local_offset(b), update_.data() + local_offset(b));
  }
  if (mu_ > 0.0) {
    const float mu = static_cast<float>(mu_), one_minus_mu = static_cast<float>(1.0 - mu_);
    for (std::size_t k = 0; k < update_.size(); ++k) {
      momentum_[k] = mu * momentum_[k] + one_minus_mu * update_[k];
      update_[k] = momentum_[k];
    }
  }
  const float step_size = static_cast<float>(lr_g);
  const float decay = coupled_ ? 1.0f : static_cast<float>(1.0 - lr_g * group.weight_decay);
  for_local([&](std::size_t i, std::size_t e0, std::size_t n, std::size_t at) {
    float* w = params[i].value + e0;
    for (std::size_t k = 0; k < n; ++k) w[k] = w[k] * decay - step_size * update_[at + k];
  });
  if (comm_ != nullptr) {
    // Every rank's updated columns to every rank (copied bits: identical parameters everywhere).
    std::fill(send_.begin(), send_.end(), 0.0f);
    for_local([&](std::size_t i, std::size_t e0, std::size_t n, std::size_t at) {
      std::copy_n(params[i].value + e0, n, send_.begin() + static_cast<std::ptrdiff_t>(at));
    });
    comm_->allgather(std::span<const float>(send_), std::span<float>(recv_));
    for (std::size_t i = 0; i < params.size(); ++i)
      std::copy_n(recv_.begin() + static_cast<std::ptrdiff_t>(param_start_[i]), params_[i].size, params[i].value);
  }
}

void MFac::save_window(std::size_t b, std::span<float> out) const {
  const auto& w = windows_[b];
  const std::size_t n = block_start_[b + 1] - block_start_[b];
  if (comm_ == nullptr) {
    std::copy(w.gradients().begin(), w.gradients().end(), out.begin());
    return;
  }
  // Row i of this block from every rank's columns (the allgather's concatenation is the flat
  // vector; rank r's columns of the block start at max(block start, r·c)).
  std::vector<float> row(hi_ - lo_), scratch(dim_);
  for (int i = 0; i < window_; ++i) {
    const auto g = w.gradients().subspan(static_cast<std::size_t>(i) * w.dim(), w.dim());
    std::fill(row.begin(), row.end(), 0.0f);
    std::copy(g.begin(), g.end(), row.begin() + static_cast<std::ptrdiff_t>(std::max(block_start_[b], lo_) - lo_));
    gather_flat(row, scratch);
    std::copy_n(scratch.begin() + static_cast<std::ptrdiff_t>(block_start_[b]), n,
                out.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(i) * n));
  }
}

}  // namespace expt::optim
