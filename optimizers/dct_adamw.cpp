#include "optimizers/dct_adamw.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/comm/communicator.hpp"
#include "kernels/dct.hpp"
#include "kernels/gemm.hpp"

namespace expt::optim {

using kernels::gemm;
using kernels::Trans;

namespace {
constexpr std::size_t kNotLowRank = static_cast<std::size_t>(-1);
}

DctAdamW::DctAdamW(const config::OptimizerConfig& cfg, const std::vector<nn::ParamInfo>& params)
    : params_(params), routing_(route_hybrid(cfg, params, "dct_adamw")) {
  if (!(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0) || !(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0))
    throw std::invalid_argument("dct_adamw: beta1 and beta2 must be in [0, 1)");
  if (cfg.rank < 1 || cfg.refresh_every < 1) throw std::invalid_argument("dct_adamw: rank and refresh_every >= 1");
  if (cfg.on_refresh != "keep" && cfg.on_refresh != "remap")
    throw std::invalid_argument("dct_adamw: on_refresh must be keep or remap");
  beta1_ = cfg.beta1;
  beta2_ = cfg.beta2;
  eps_ = cfg.eps;
  rank_ = cfg.rank;
  refresh_every_ = cfg.refresh_every;
  remap_on_refresh_ = cfg.on_refresh == "remap";
  shard_ = cfg.shard;
  groups_ = routing_.groups;
  adam_ = std::make_unique<AdamW>(cfg, routing_.adam_infos, routing_.adam_rules);
  adam_refs_.resize(routing_.adam_params.size());

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
}

void DctAdamW::set_communicator(comm::Communicator* comm) {
  std::vector<double> cost;
  for (const LowRank& p : low_rank_) {
    const double m = p.m, n = p.n;
    cost.push_back(2.0 * m * n * p.r + m * n * p.s / refresh_every_);
  }
  ownership_.assign(comm, shard_, cost);
  for (std::size_t k = 0; k < low_rank_.size(); ++k) {
    LowRank& p = low_rank_[k];
    const std::size_t size = ownership_.owns(k) ? static_cast<std::size_t>(std::max(p.m, p.n)) * p.r : 0;
    for (auto* moment : {&p.M, &p.V}) {
      moment->assign(size, 0.0f);
      moment->shrink_to_fit();
    }
  }
}

std::span<const std::int64_t> DctAdamW::indices(std::size_t i) const {
  if (i >= low_rank_of_.size() || low_rank_of_[i] == kNotLowRank)
    throw std::invalid_argument("dct_adamw: parameter is not low-rank");
  return low_rank_[low_rank_of_[i]].I;
}

void DctAdamW::step(std::span<const ParamRef> params, std::int64_t step, double lr) {
  check_param_refs("dct_adamw", params, params_);
  const std::int64_t t = ++t_;
  const bool refresh = t == 1 || t % refresh_every_ == 0;
  const ParamGroup& group = routing_.groups[routing_.main_group];
  const double lr_g = lr * group.lr_scale;
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(t));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2_, static_cast<double>(t)));
  const float decay = static_cast<float>(1.0 - lr_g * group.weight_decay);
  const float step_size = static_cast<float>(lr_g * bc2_sqrt / bc1);
  const float eps_eff = static_cast<float>(eps_ * bc2_sqrt);
  const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
  const float one_minus_b1 = static_cast<float>(1.0 - beta1_), one_minus_b2 = static_cast<float>(1.0 - beta2_);

  for (std::size_t slot = 0; slot < routing_.main_params.size(); ++slot) {
    if (!ownership_.owns(slot)) continue;  // the owner broadcasts it below
    const std::size_t i = routing_.main_params[slot];
    LowRank& p = low_rank_[slot];
    const int m = p.m, n = p.n, s = p.s, r = p.r;
    const float* G = params[i].grad;
    float* W = params[i].value;
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
      std::nth_element(ranking_.begin(), ranking_.begin() + (r - 1), ranking_.begin() + s,
                       [](const auto& x, const auto& y) {
                         return x.first > y.first || (x.first == y.first && x.second < y.second);
                       });
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
  if (ownership_.sharded())
    for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
      const std::size_t i = routing_.main_params[k];
      ownership_.share(k, std::span<float>(params[i].value, params_[i].size));
    }

  for (std::size_t k = 0; k < routing_.adam_params.size(); ++k) adam_refs_[k] = params[routing_.adam_params[k]];
  adam_->step(adam_refs_, step, lr);
}

StateDict DctAdamW::state() const {
  StateDict sd;
  sd.put_scalar("t", t_);
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    const LowRank& p = low_rank_[k];
    const std::string& name = params_[routing_.main_params[k]].name;
    const std::vector<std::int64_t> shape =
        p.right ? std::vector<std::int64_t>{p.m, p.r} : std::vector<std::int64_t>{p.r, p.n};
    // Sharded: every rank receives the owner's entries (a non-owner's M and V are empty).
    const std::size_t low_size = static_cast<std::size_t>(std::max(p.m, p.n)) * p.r;
    std::vector<float> M(low_size, 0.0f), V(low_size, 0.0f);
    std::vector<std::int64_t> I = p.I;
    if (ownership_.owns(k)) {
      std::copy(p.M.begin(), p.M.end(), M.begin());
      std::copy(p.V.begin(), p.V.end(), V.begin());
    }
    ownership_.share(k, std::span<float>(M));
    ownership_.share(k, std::span<float>(V));
    ownership_.share(k, std::span<std::int64_t>(I));
    sd.put("M/" + name, std::span<const float>(M), shape);
    sd.put("V/" + name, std::span<const float>(V), shape);
    sd.put("I/" + name, std::span<const std::int64_t>(I));
  }
  sd.merge("adamw", adam_->state());
  return sd;
}

void DctAdamW::load_state(const StateDict& state) {
  const StateDict adam_state = state.sub("adamw");
  if (state.entries().size() != 1 + 3 * routing_.main_params.size() + adam_state.entries().size())
    throw std::runtime_error("dct_adamw state: unexpected entries");
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    const LowRank& p = low_rank_[k];
    const std::string& name = params_[routing_.main_params[k]].name;
    const std::size_t low_size = static_cast<std::size_t>(std::max(p.m, p.n)) * p.r;
    if (state.floats("M/" + name).size() != low_size || state.floats("V/" + name).size() != low_size ||
        state.ints("I/" + name).size() != p.I.size())
      throw std::runtime_error("dct_adamw state: entries of '" + name + "' have the wrong size");
    for (std::int64_t j : state.ints("I/" + name))
      if (j < 0 || j >= p.s) throw std::runtime_error("dct_adamw state: index out of range for '" + name + "'");
  }
  adam_->load_state(adam_state);
  t_ = state.scalar_int("t");
  for (std::size_t k = 0; k < routing_.main_params.size(); ++k) {
    LowRank& p = low_rank_[k];
    const std::string& name = params_[routing_.main_params[k]].name;
    p.I = state.ints("I/" + name);
    p.I_prev = p.I;
    if (!ownership_.owns(k)) continue;
    state.get_into("M/" + name, std::span<float>(p.M));
    state.get_into("V/" + name, std::span<float>(p.V));
  }
}

}  // namespace expt::optim
