#include "kernels/delta_product.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace expt::kernels {

namespace {

std::size_t sz(long n) { return static_cast<std::size_t>(n); }

DeltaRuleShape virtual_shape(const DeltaProductShape& s) {
  return {s.batch, s.seq_len * s.householder_steps, s.heads, s.key_dim, s.value_dim};
}

// Copies rows between a real [B, T, H, width] buffer and a virtual [B, T*n_h, H, width] one: real
// token t <-> virtual position t*n_h + step. The other virtual rows are left alone.
template <class T>
void real_to_virtual(const DeltaProductShape& s, int width, int step, const T* real, T* virt) {
  const std::size_t row = sz(s.heads) * sz(width);
  for (int b = 0; b < s.batch; ++b)
    for (int t = 0; t < s.seq_len; ++t) {
      const std::size_t r = sz(b) * sz(s.seq_len) + sz(t);
      std::copy_n(real + r * row, row, virt + (r * sz(s.householder_steps) + sz(step)) * row);
    }
}

template <class T>
void virtual_to_real(const DeltaProductShape& s, int width, int step, const T* virt, T* real) {
  const std::size_t row = sz(s.heads) * sz(width);
  for (int b = 0; b < s.batch; ++b)
    for (int t = 0; t < s.seq_len; ++t) {
      const std::size_t r = sz(b) * sz(s.seq_len) + sz(t);
      std::copy_n(virt + (r * sz(s.householder_steps) + sz(step)) * row, row, real + r * row);
    }
}

std::size_t virtual_rows(const DeltaProductShape& s) { return sz(s.batch) * sz(s.seq_len) * sz(s.householder_steps); }

}  // namespace

template <class T>
void delta_product_forward(const DeltaProductShape& s, T scale, const DeltaRuleInputs<T>& in, T* out,
                           std::type_identity_t<T>* final_state, int chunk_size) {
  delta_rule_interleaved_forward(static_cast<const RecurrentShape&>(s), s.householder_steps, scale, in, out,
                                 final_state, chunk_size);
}

template <class T>
void delta_product_backward(const DeltaProductShape& s, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                            const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads,
                            int chunk_size) {
  delta_rule_interleaved_backward(static_cast<const RecurrentShape&>(s), s.householder_steps, scale, in, dout,
                                  dfinal_state, grads, chunk_size);
}

template <class T>
void delta_product_recurrent_forward(const DeltaProductShape& s, T scale, const DeltaRuleInputs<T>& in, T* out,
                                     std::type_identity_t<T>* final_state) {
  const int last = s.householder_steps - 1;
  const std::size_t rows = virtual_rows(s);
  // Virtual queries: q_t at the last step of token t, zero elsewhere (the outputs there are dropped).
  std::vector<T> q_virtual(rows * sz(s.heads) * sz(s.key_dim), T(0));
  real_to_virtual(s, s.key_dim, last, in.q, q_virtual.data());
  // Virtual gates: g_t at the first step (decay before the first Householder step), zero elsewhere.
  std::vector<T> g_virtual;
  if (in.g) {
    g_virtual.assign(rows * sz(s.heads), T(0));
    real_to_virtual(s, 1, 0, in.g, g_virtual.data());
  }
  std::vector<T> out_virtual(rows * sz(s.heads) * sz(s.value_dim));
  const DeltaRuleInputs<T> virt{q_virtual.data(), in.k, in.v, in.beta, in.g ? g_virtual.data() : nullptr,
                                in.initial_state};
  delta_rule_recurrent_forward(virtual_shape(s), scale, virt, out_virtual.data(), final_state);
  virtual_to_real(s, s.value_dim, last, out_virtual.data(), out);
}

template <class T>
void delta_product_recurrent_backward(const DeltaProductShape& s, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                                      const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads) {
  const int last = s.householder_steps - 1;
  const std::size_t rows = virtual_rows(s);
  std::vector<T> q_virtual(rows * sz(s.heads) * sz(s.key_dim), T(0));
  real_to_virtual(s, s.key_dim, last, in.q, q_virtual.data());
  std::vector<T> g_virtual, dg_virtual;
  if (in.g) {
    g_virtual.assign(rows * sz(s.heads), T(0));
    real_to_virtual(s, 1, 0, in.g, g_virtual.data());
    dg_virtual.resize(rows * sz(s.heads));
  }
  // Only the kept outputs carry gradient.
  std::vector<T> dout_virtual(rows * sz(s.heads) * sz(s.value_dim), T(0));
  real_to_virtual(s, s.value_dim, last, dout, dout_virtual.data());
  std::vector<T> dq_virtual(rows * sz(s.heads) * sz(s.key_dim));

  const DeltaRuleInputs<T> virt{q_virtual.data(), in.k, in.v, in.beta, in.g ? g_virtual.data() : nullptr,
                                in.initial_state};
  const DeltaRuleGradients<T> virt_grads{
      dq_virtual.data(), grads.dk, grads.dv, grads.dbeta, in.g ? dg_virtual.data() : nullptr, grads.dinitial_state};
  delta_rule_recurrent_backward(virtual_shape(s), scale, virt, dout_virtual.data(), dfinal_state, virt_grads);
  // The real query and gate are read at one virtual position each; the gradients at the other
  // positions belong to the zeros placed there and are dropped.
  virtual_to_real(s, s.key_dim, last, dq_virtual.data(), grads.dq);
  if (in.g && grads.dg) virtual_to_real(s, 1, 0, dg_virtual.data(), grads.dg);
}

#define EXPT_INSTANTIATE_DELTA_PRODUCT(T)                                                                             \
  template void delta_product_forward<T>(const DeltaProductShape&, T, const DeltaRuleInputs<T>&, T*, T*, int);        \
  template void delta_product_backward<T>(const DeltaProductShape&, T, const DeltaRuleInputs<T>&, const T*, const T*, \
                                          const DeltaRuleGradients<T>&, int);                                         \
  template void delta_product_recurrent_forward<T>(const DeltaProductShape&, T, const DeltaRuleInputs<T>&, T*, T*);   \
  template void delta_product_recurrent_backward<T>(const DeltaProductShape&, T, const DeltaRuleInputs<T>&, const T*, \
                                                    const T*, const DeltaRuleGradients<T>&);

EXPT_INSTANTIATE_DELTA_PRODUCT(float)
EXPT_INSTANTIATE_DELTA_PRODUCT(double)

#undef EXPT_INSTANTIATE_DELTA_PRODUCT

}  // namespace expt::kernels
