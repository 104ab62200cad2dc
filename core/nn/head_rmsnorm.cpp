#include "core/nn/head_rmsnorm.hpp"

#include <cmath>

#include "kernels/elementwise_math.hpp"
#include "kernels/reduction.hpp"

namespace expt::nn {

using kernels::math::sigmoid;

template <class T>
HeadRMSNorm<T>::HeadRMSNorm(ParameterStore<T>& store, const std::string& name, int heads, int head_dim, double eps)
    : store_(&store),
      weight_id_(store.add(name, {head_dim}, ParamRole::vector)),
      heads_(heads),
      head_dim_(head_dim),
      eps_(eps) {}

template <class T>
void HeadRMSNorm<T>::forward(const T* o, const T* gate, T* y, int rows) {
  const T* w = store_->value(weight_id_);
  const std::size_t groups = static_cast<std::size_t>(rows) * heads_;
  rstd_.resize(groups);
  // One loop per head without a branch in it, on restrict-qualified views: with the gate test
  // inside the element loop (the gate row is only read when there is one) GCC did not vectorise
  // it ("control flow in loop"), and the fp32 forward ran the SiLU's exp and division one element
  // at a time (1.9 % of the GLA d_model 128 step on Zen 3, docs/performance.md "AVX2"). The same
  // operations in the same order per element: math::exp gives the same bits in a lane as in the
  // scalar remainder.
  const auto head = [&](T r, const T* __restrict og, const T* __restrict zg, const T* __restrict wv, T* __restrict yg) {
    if (zg)
      for (int i = 0; i < head_dim_; ++i) yg[i] = og[i] * r * wv[i] * (zg[i] * sigmoid(zg[i]));
    else
      for (int i = 0; i < head_dim_; ++i) yg[i] = og[i] * r * wv[i];
  };
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t base = g * head_dim_;
    const T sum_sq = kernels::sum_squares_fixed_order<T>(o + base, static_cast<std::size_t>(head_dim_));
    const T r = T(1) / std::sqrt(sum_sq / head_dim_ + static_cast<T>(eps_));
    rstd_[g] = r;
    head(r, o + base, gate ? gate + base : nullptr, w, y + base);
  }
}

template <class T>
void HeadRMSNorm<T>::backward(const T* o, const T* gate, const T* dy, T* d_o, T* dgate, int rows) {
  const T* w = store_->value(weight_id_);
  T* dw = store_->grad(weight_id_);
  const std::size_t groups = static_cast<std::size_t>(rows) * heads_;
  // The per-head loops are short (head_dim elements); restrict-qualified views spare GCC a run-time
  // alias check before every one of them.
  const auto pass = [&](T r, const T* __restrict og, const T* __restrict zg, const T* __restrict dyg, T* __restrict dog,
                        T* __restrict dzg, const T* __restrict wv, T* __restrict dwv) {
    // First pass: gate terms, dw, and q = dy w s; then mean(q (.) n) for the normalisation
    // backward, as r (q . o) (n = o r).
    // Two branch-free loops (gated or not) rather than one with the gate test inside: GCC
    // vectorises neither with the test (as in forward).
    if (zg)
      for (int i = 0; i < head_dim_; ++i) {
        const T n = og[i] * r;
        const T z = zg[i];
        const T sig = sigmoid(z);
        const T s = z * sig;
        dzg[i] = dyg[i] * n * wv[i] * sig * (T(1) + z * (T(1) - sig));
        dwv[i] += dyg[i] * n * s;
        dog[i] = dyg[i] * wv[i] * s;  // holds q until the second pass
      }
    else
      for (int i = 0; i < head_dim_; ++i) {
        const T n = og[i] * r;
        dwv[i] += dyg[i] * n;
        dog[i] = dyg[i] * wv[i];  // holds q until the second pass
      }
    const T q_dot_n = r * kernels::dot_fixed_order<T>(dog, og, static_cast<std::size_t>(head_dim_));
    const T mean_qn = q_dot_n / head_dim_;
    for (int i = 0; i < head_dim_; ++i) dog[i] = r * (dog[i] - og[i] * r * mean_qn);
  };
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t base = g * head_dim_;
    pass(rstd_[g], o + base, gate ? gate + base : nullptr, dy + base, d_o + base, gate ? dgate + base : nullptr, w, dw);
  }
}

template class HeadRMSNorm<float>;
template class HeadRMSNorm<double>;

}  // namespace expt::nn
