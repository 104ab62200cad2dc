#include "optimizers/dct_adamw.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>
#include <utility>

#include "kernels/dct.hpp"
#include "kernels/gemm.hpp"

namespace expt::optim {

using kernels::gemm;
using kernels::Trans;

namespace {
constexpr std::size_t kNotLowRank = static_cast<std::size_t>(-1);
}

OptimizerMemory DctAdamW::memory(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params) {
  const HybridRouting routing = route_hybrid(cfg, params, "dct_adamw");
  OptimizerMemory mem = adamw_part_memory(routing);
  mem.state += 8.0;  // t
  std::set<int> sizes;
  double largest_full = 0, largest_low = 0, largest_q = 0, largest_s = 0;
  for (std::size_t i : routing.main_params) {
    const double m = static_cast<double>(params[i].rows()), n = static_cast<double>(params[i].cols());
    const int s = static_cast<int>(std::min(m, n));
    const double r = std::min(cfg.rank, s);
    const double low = std::max(m, n) * r;
    mem.state += 2.0 * sizeof(float) * low + 8.0 * r;
    mem.scratch += 8.0 * r;  // I_prev
    if (sizes.insert(s).second) mem.scratch += sizeof(float) * static_cast<double>(s) * s;
    largest_full = std::max(largest_full, m * n);
    largest_low = std::max(largest_low, low);
    largest_q = std::max(largest_q, s * r);
    largest_s = std::max(largest_s, static_cast<double>(s));
  }
  mem.scratch += sizeof(float) * largest_s + sizeof(std::pair<float, std::int64_t>) * largest_s +
                 sizeof(float) * (largest_full + largest_q + 2.0 * largest_low);
  return mem;
}

DctAdamW::DctAdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params)
    : HybridOptimizer(cfg, params, "dct_adamw") {
  if (!(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0) || !(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0))
    throw std::invalid_argument("dct_adamw: beta1 and beta2 must be in [0, 1)");
  if (cfg.rank < 1 || cfg.refresh_every < 1) throw std::invalid_argument("dct_adamw: rank and refresh_every >= 1");
  beta1_ = cfg.beta1;
  beta2_ = cfg.beta2;
  eps_ = cfg.eps;
  rank_ = cfg.rank;
  refresh_every_ = cfg.refresh_every;
  remap_on_refresh_ = cfg.on_refresh == config::OnRefresh::remap;

  low_rank_of_.assign(params_.size(), kNotLowRank);
  std::size_t largest_full = 0, largest_low = 0, largest_q = 0;
  int largest_s = 0;
  for (std::size_t i : routing_.main_params) {
    LowRank lr;
    lr.m = static_cast<int>(params_[i].rows());
    lr.n = static_cast<int>(params_[i].cols());
    lr.right = lr.m >= lr.n;
    lr.s = std::min(lr.m, lr.n);
    lr.r = std::min(rank_, lr.s);
    const int big = std::max(lr.m, lr.n);
    lr.M.assign(static_cast<std::size_t>(big) * lr.r, 0.0f);
    lr.V.assign(lr.M.size(), 0.0f);
    lr.I.assign(lr.r, 0);
    lr.I_prev.assign(lr.r, 0);
    if (!dct_.count(lr.s)) {
      std::vector<float> C(static_cast<std::size_t>(lr.s) * lr.s);
      kernels::dct2_matrix<float>(lr.s, C);
      dct_.emplace(lr.s, std::move(C));
    }
    largest_full = std::max(largest_full, params_[i].size);
    largest_low = std::max(largest_low, lr.M.size());
    largest_q = std::max(largest_q, static_cast<std::size_t>(lr.s) * lr.r);
    largest_s = std::max(largest_s, lr.s);
    low_rank_of_[i] = low_rank_.size();
    low_rank_.push_back(std::move(lr));
  }
  scores_.assign(largest_s, 0.0f);
  ranking_.assign(largest_s, {0.0f, 0});
  projected_.assign(largest_full, 0.0f);  // S = G·Q or Qᵀ·G has the shape of G
  q_selected_.assign(largest_q, 0.0f);
  low_grad_.assign(largest_low, 0.0f);
  remap_.assign(largest_low, 0.0f);

  add_scalar("t", t_);
  for (std::size_t k = 0; k < low_rank_.size(); ++k) {
    const LowRank& p = low_rank_[k];
    const std::string& name = params_[routing_.main_params[k]].name;
    const std::vector<std::int64_t> shape =
        p.right ? std::vector<std::int64_t>{p.m, p.r} : std::vector<std::int64_t>{p.r, p.n};
    add_array<float>(
        "M/" + name, shape, [this, k] { return std::span<float>(low_rank_[k].M); }, &ownership_, k);
    add_array<float>(
        "V/" + name, shape, [this, k] { return std::span<float>(low_rank_[k].V); }, &ownership_, k);
    add_array<std::int64_t>(
        "I/" + name, {}, [this, k] { return std::span<std::int64_t>(low_rank_[k].I); }, &ownership_, k,
        [s = p.s](std::span<const std::int64_t> I) -> std::optional<std::string> {
          for (std::int64_t j : I)
            if (j < 0 || j >= s) return "index " + std::to_string(j) + " out of range [0, " + std::to_string(s) + ")";
          return std::nullopt;
        });
  }
}

std::vector<double> DctAdamW::matrix_costs() const {
  std::vector<double> cost;
  for (const LowRank& p : low_rank_) {
    const double m = p.m, n = p.n;
    cost.push_back(2.0 * m * n * p.r + m * n * p.s / refresh_every_);
  }
  return cost;
}

void DctAdamW::on_ownership() {
  for (std::size_t k = 0; k < low_rank_.size(); ++k) {
    LowRank& p = low_rank_[k];
    const std::size_t size = ownership_.owns(k) ? static_cast<std::size_t>(std::max(p.m, p.n)) * p.r : 0;
    for (auto* moment : {&p.M, &p.V}) {
      moment->assign(size, 0.0f);
      moment->shrink_to_fit();
    }
  }
}

void DctAdamW::after_load() {
  for (LowRank& p : low_rank_) p.I_prev = p.I;
}

std::span<const std::int64_t> DctAdamW::indices(std::size_t i) const {
  if (i >= low_rank_of_.size() || low_rank_of_[i] == kNotLowRank)
    throw std::invalid_argument("dct_adamw: parameter is not low-rank");
  return low_rank_[low_rank_of_[i]].I;
}

void DctAdamW::begin_step(double lr_main) {
  const std::int64_t t = ++t_;
  refresh_ = t == 1 || t % refresh_every_ == 0;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(t)));
  step_size_ = static_cast<float>(lr_main * bc2_sqrt / bc1);
  eps_eff_ = static_cast<float>(eps_ * bc2_sqrt);
}

void DctAdamW::update_matrix(std::size_t slot, const ParamRef& param, double /*lr_main: in step_size_*/, float decay) {
  const bool refresh = refresh_;
  const std::int64_t t = t_;
  const float step_size = step_size_, eps_eff = eps_eff_;
  const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
  const float one_minus_b1 = static_cast<float>(1.0 - beta1_), one_minus_b2 = static_cast<float>(1.0 - beta2_);
  LowRank& p = low_rank_[slot];
  const int m = p.m, n = p.n, s = p.s, r = p.r;
  const float* G = param.grad;
  float* W = param.value;
  const float* C = dct_.at(s).data();
  const int big = p.right ? m : n;  // the kept side
  const std::size_t low_size = static_cast<std::size_t>(big) * r;

  if (refresh) {
    // S = G·Q (m x s, right) or Qᵀ·G (s x n, left); score each candidate by its L1 norm.
    if (p.right)
      gemm<float>(Trans::no, Trans::no, m, s, n, 1.0f, G, n, C, s, 0.0f, projected_.data(), s);
    else
      gemm<float>(Trans::yes, Trans::no, s, n, m, 1.0f, C, s, G, n, 0.0f, projected_.data(), n);
    std::fill(scores_.begin(), scores_.begin() + s, 0.0f);
    if (p.right) {
      for (int a = 0; a < m; ++a)
        for (int j = 0; j < s; ++j) scores_[j] += std::abs(projected_[static_cast<std::size_t>(a) * s + j]);
    } else {
      for (int j = 0; j < s; ++j)
        for (int b = 0; b < n; ++b) scores_[j] += std::abs(projected_[static_cast<std::size_t>(j) * n + b]);
    }
    for (int j = 0; j < s; ++j) ranking_[j] = {scores_[j], j};
    // Best r by score (ties: lower index), then ascending index order.
    std::nth_element(
        ranking_.begin(), ranking_.begin() + (r - 1), ranking_.begin() + s,
        [](const auto& x, const auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
    std::copy(p.I.begin(), p.I.end(), p.I_prev.begin());
    for (int k = 0; k < r; ++k) p.I[k] = ranking_[k].second;
    std::sort(p.I.begin(), p.I.end());
    // a = S[:, I] or S[I, :].
    for (int k = 0; k < r; ++k) {
      const std::int64_t j = p.I[k];
      if (p.right)
        for (int a = 0; a < m; ++a)
          low_grad_[static_cast<std::size_t>(a) * r + k] = projected_[static_cast<std::size_t>(a) * s + j];
      else
        std::copy_n(projected_.data() + j * n, n, low_grad_.data() + static_cast<std::size_t>(k) * n);
    }
    // Q[:, I] (s x r), kept for the projections until the next refresh.
    for (int row = 0; row < s; ++row)
      for (int k = 0; k < r; ++k)
        q_selected_[static_cast<std::size_t>(row) * r + k] = C[static_cast<std::size_t>(row) * s + p.I[k]];
    if (remap_on_refresh_ && t > 1) {
      // Slot k of the new selection takes the moments of the old slot holding the same index.
      for (auto* moment : {&p.M, &p.V}) {
        std::fill(remap_.begin(), remap_.begin() + low_size, 0.0f);
        for (int k = 0; k < r; ++k) {
          const auto old = std::find(p.I_prev.begin(), p.I_prev.end(), p.I[k]);
          if (old == p.I_prev.end()) continue;
          const int o = static_cast<int>(old - p.I_prev.begin());
          if (p.right)
            for (int a = 0; a < m; ++a)
              remap_[static_cast<std::size_t>(a) * r + k] = (*moment)[static_cast<std::size_t>(a) * r + o];
          else
            std::copy_n(moment->data() + static_cast<std::size_t>(o) * n, n,
                        remap_.data() + static_cast<std::size_t>(k) * n);
        }
        std::copy_n(remap_.data(), low_size, moment->data());
      }
    }
  } else {
    for (int row = 0; row < s; ++row)
      for (int k = 0; k < r; ++k)
        q_selected_[static_cast<std::size_t>(row) * r + k] = C[static_cast<std::size_t>(row) * s + p.I[k]];
    if (p.right)
      gemm<float>(Trans::no, Trans::no, m, r, n, 1.0f, G, n, q_selected_.data(), r, 0.0f, low_grad_.data(), r);
    else
      gemm<float>(Trans::yes, Trans::no, r, n, m, 1.0f, q_selected_.data(), r, G, n, 0.0f, low_grad_.data(), n);
  }

  // Adam in the subspace; U overwrites low_grad_.
  for (std::size_t k = 0; k < low_size; ++k) {
    const float a = low_grad_[k];
    p.M[k] = b1 * p.M[k] + one_minus_b1 * a;
    p.V[k] = b2 * p.V[k] + one_minus_b2 * a * a;
    low_grad_[k] = p.M[k] / (eps_eff + std::sqrt(p.V[k]));
  }
  // W ← decay·W − step·Δ, Δ = U·Q[:, I]ᵀ (right) or Q[:, I]·U (left): one sgemm with beta = decay
  // updates W in place (no m x n Δ buffer and no separate pass over W).
  if (p.right)
    gemm<float>(Trans::no, Trans::yes, m, n, r, -step_size, low_grad_.data(), r, q_selected_.data(), r, decay, W, n);
  else
    gemm<float>(Trans::no, Trans::no, m, n, r, -step_size, q_selected_.data(), r, low_grad_.data(), n, decay, W, n);
}

}  // namespace expt::optim
