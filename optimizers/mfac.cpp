#include "optimizers/mfac.hpp"

#include <algorithm>
#include <stdexcept>

#include "kernels/gemm.hpp"
#include "optimizers/hybrid_routing.hpp"

namespace expt::optim {

using kernels::gemm;
using kernels::Trans;

template <class T>
MfacWindow<T>::MfacWindow(int window, std::size_t dim, double damping) : m_(window), d_(dim), eps_(1.0 / damping) {
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
void MfacWindow<T>::insert_row(const T* g) {
  const int s = slot_;
  std::copy(g, g + d_, G_.data() + static_cast<std::size_t>(s) * d_);
  // Gram row k = G g (a GEMV through gemm with N = 1), then K[s, :] = K[:, s] = k.
  gemm<T>(Trans::no, Trans::no, m_, 1, static_cast<int>(d_), T(1), G_.data(), static_cast<int>(d_), g, 1, T(0),
          p_t_.data(), 1);
  for (int j = 0; j < m_; ++j) {
    p_[j] = static_cast<double>(p_t_[j]);
    K_[static_cast<std::size_t>(s) * m_ + j] = p_[j];
    K_[static_cast<std::size_t>(j) * m_ + s] = p_[j];
  }
  slot_ = (slot_ + 1) % m_;
  count_ = std::min(count_ + 1, m_);
}

template <class T>
void MfacWindow<T>::factor() {
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
void MfacWindow<T>::apply(const T* x, T* y) {
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
void MfacWindow<T>::insert(const T* g) {
  insert_row(g);
  factor();
}

template <class T>
void MfacWindow<T>::ihvp(const T* x, T* y) {
  gemm<T>(Trans::no, Trans::no, m_, 1, static_cast<int>(d_), T(1), G_.data(), static_cast<int>(d_), x, 1, T(0),
          p_t_.data(), 1);
  for (int j = 0; j < m_; ++j) p_[j] = static_cast<double>(p_t_[j]);
  apply(x, y);
}

template <class T>
void MfacWindow<T>::insert_and_ihvp(const T* g, T* y) {
  insert_row(g);  // leaves p_ = G g
  factor();
  apply(g, y);
}

template <class T>
void MfacWindow<T>::restore(std::span<const T> G, std::span<const double> K, int slot, int count) {
  if (G.size() != G_.size() || K.size() != K_.size() || slot < 0 || slot >= m_ || count < 0 || count > m_)
    throw std::runtime_error("mfac state: window of the wrong shape");
  std::copy(G.begin(), G.end(), G_.begin());
  std::copy(K.begin(), K.end(), K_.begin());
  slot_ = slot;
  count_ = count;
  factor();
}

template class MfacWindow<float>;
template class MfacWindow<double>;

MFac::MFac(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) : params_(params) {
  if (!(cfg.momentum >= 0.0 && cfg.momentum < 1.0)) throw std::invalid_argument("mfac: momentum must be in [0, 1)");
  if (cfg.block_size < 0) throw std::invalid_argument("mfac: block_size must be >= 0");
  mu_ = cfg.momentum;
  if (cfg.wd_mode == "coupled_l2")
    coupled_ = true;
  else if (cfg.wd_mode == "decoupled_lr_scaled")
    coupled_ = false;
  else
    throw std::invalid_argument("mfac: unknown wd_mode '" + cfg.wd_mode + "'");
  const std::vector<GroupRule> rules = {{"mfac", {}, "", 1.0, cfg.weight_decay}};
  groups_ = build_param_groups(rules, params_);
  for (const auto& p : params_) dim_ += p.size;
  const std::size_t block =
      cfg.block_size > 0 ? static_cast<std::size_t>(cfg.block_size) : std::max<std::size_t>(dim_, 1);
  for (std::size_t start = 0; start < dim_; start += block) {
    block_start_.push_back(start);
    windows_.emplace_back(cfg.window, std::min(block, dim_ - start), cfg.damping);
  }
  block_start_.push_back(dim_);
  flat_.assign(dim_, 0.0f);
  update_.assign(dim_, 0.0f);
  momentum_.assign(dim_, 0.0f);
}

void MFac::step(std::span<const ParamRef> params, std::int64_t /*step*/, double lr) {
  check_param_refs("mfac", params, params_);
  const ParamGroup& group = groups_.front();
  const double lr_g = lr * group.lr_scale;
  const float wd = static_cast<float>(group.weight_decay);
  // ĝ: the flat gradient, plus wd·θ when the decay is coupled.
  std::size_t at = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const float* g = params[i].grad;
    const float* w = params[i].value;
    for (std::size_t k = 0; k < params_[i].size; ++k) flat_[at + k] = coupled_ ? g[k] + wd * w[k] : g[k];
    at += params_[i].size;
  }
  for (std::size_t b = 0; b < windows_.size(); ++b)
    windows_[b].insert_and_ihvp(flat_.data() + block_start_[b], update_.data() + block_start_[b]);
  if (mu_ > 0.0) {
    const float mu = static_cast<float>(mu_), one_minus_mu = static_cast<float>(1.0 - mu_);
    for (std::size_t k = 0; k < dim_; ++k) {
      momentum_[k] = mu * momentum_[k] + one_minus_mu * update_[k];
      update_[k] = momentum_[k];
    }
  }
  const float step_size = static_cast<float>(lr_g);
  const float decay = coupled_ ? 1.0f : static_cast<float>(1.0 - lr_g * group.weight_decay);
  at = 0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    float* w = params[i].value;
    for (std::size_t k = 0; k < params_[i].size; ++k) w[k] = w[k] * decay - step_size * update_[at + k];
    at += params_[i].size;
  }
}

StateDict MFac::state() const {
  StateDict sd;
  sd.put("momentum", std::span<const float>(momentum_));
  for (std::size_t b = 0; b < windows_.size(); ++b) {
    const auto& w = windows_[b];
    const std::string prefix = "block" + std::to_string(b) + "/";
    sd.put(prefix + "G", w.gradients(), {w.window(), static_cast<std::int64_t>(w.dim())});
    sd.put(prefix + "K", w.gram(), {w.window(), w.window()});
    sd.put_scalar(prefix + "slot", static_cast<std::int64_t>(w.next_slot()));
    sd.put_scalar(prefix + "count", static_cast<std::int64_t>(w.count()));
  }
  return sd;
}

void MFac::load_state(const StateDict& state) {
  if (state.entries().size() != 1 + 4 * windows_.size())
    throw std::runtime_error("mfac state: expected " + std::to_string(1 + 4 * windows_.size()) + " entries, got " +
                             std::to_string(state.entries().size()));
  if (state.floats("momentum").size() != dim_) throw std::runtime_error("mfac state: 'momentum' has the wrong size");
  for (std::size_t b = 0; b < windows_.size(); ++b) {
    const std::string prefix = "block" + std::to_string(b) + "/";
    if (state.floats(prefix + "G").size() != windows_[b].gradients().size() ||
        state.doubles(prefix + "K").size() != windows_[b].gram().size())
      throw std::runtime_error("mfac state: block " + std::to_string(b) + " has the wrong shape");
  }
  for (std::size_t b = 0; b < windows_.size(); ++b) {
    const std::string prefix = "block" + std::to_string(b) + "/";
    windows_[b].restore(state.floats(prefix + "G"), state.doubles(prefix + "K"),
                        static_cast<int>(state.scalar_int(prefix + "slot")),
                        static_cast<int>(state.scalar_int(prefix + "count")));
  }
  state.get_into("momentum", std::span<float>(momentum_));
}

}  // namespace expt::optim
