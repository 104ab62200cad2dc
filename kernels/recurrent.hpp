// What the recurrent mixer kernels share: their shape, their inputs and gradients, and where one
// (batch, head) slice lies in their buffers. GLA (kernels/gla.hpp), the delta rule
// (kernels/delta_rule.hpp) and DeltaProduct (kernels/delta_product.hpp) all run, per (batch, head),
// a recurrence on a key-major state S in R^{d_k x d_v} driven by queries, keys and values, and read
// the output o_t = scale S_t^T q_t (docs/derivations/gla.md, docs/derivations/delta_rule.md).
//
// Memory layout (row-major), the same for every kernel:
//   q, k           [batch, seq_len, heads, key_dim]    (the d -> H*d_k projection output, head h in
//                                                        columns [h*key_dim, (h+1)*key_dim))
//   v, out         [batch, seq_len, heads, value_dim]
//   states         [batch, heads, key_dim, value_dim]  (S row-major: S[i][j], i over keys)
// and the kernel's own gate tensors:
//   GLA            g [batch, seq_len, heads, key_dim]  (per-channel log-decay)
//   delta rule     beta, g [batch, seq_len, heads]     (per-head step size and log-decay)
// Gradients have the layout of the tensor they belong to. DeltaProduct's k, v, beta have n_h rows
// per token (kernels/delta_product.hpp).
#pragma once

#include <cstddef>

namespace expt::kernels {

struct RecurrentShape {
  int batch = 0;
  int seq_len = 0;
  int heads = 0;
  int key_dim = 0;
  int value_dim = 0;
};

// GLA's forward inputs; initial_state == nullptr starts from S = 0.
template <class T>
struct GlaInputs {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* g = nullptr;
  const T* initial_state = nullptr;
};

// GLA's gradient outputs, overwritten by the backward. dq, dk, dv, dg are required; dinitial_state
// (dL/dS_{-1}) is written when non-null, also if the forward started from zero.
template <class T>
struct GlaGradients {
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  T* dg = nullptr;
  T* dinitial_state = nullptr;
};

// The delta rule's (and DeltaProduct's) forward inputs. g == nullptr is the plain (ungated) delta
// rule; initial_state == nullptr starts from S = 0.
template <class T>
struct DeltaRuleInputs {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  const T* beta = nullptr;
  const T* g = nullptr;
  const T* initial_state = nullptr;
};

// The delta rule's gradient outputs, overwritten by the backward. dq, dk, dv, dbeta are required;
// dg is written when both it and the inputs' g are non-null; dinitial_state (dL/dS_{-1}) when
// non-null, also if the forward started from zero.
template <class T>
struct DeltaRuleGradients {
  T* dq = nullptr;
  T* dk = nullptr;
  T* dv = nullptr;
  T* dbeta = nullptr;
  T* dg = nullptr;
  T* dinitial_state = nullptr;
};

// Offset of token 0 of (batch b, head h) in a [batch, seq_len, heads, dim] buffer (dim = 1 for a
// per-head tensor such as beta), and of its state in a [batch, heads, key_dim, value_dim] buffer.
inline std::size_t token_offset(const RecurrentShape& s, int b, int h, int dim) {
  return (static_cast<std::size_t>(b) * static_cast<std::size_t>(s.seq_len) * static_cast<std::size_t>(s.heads) +
          static_cast<std::size_t>(h)) *
         static_cast<std::size_t>(dim);
}
inline std::size_t state_offset(const RecurrentShape& s, int b, int h) {
  return (static_cast<std::size_t>(b) * static_cast<std::size_t>(s.heads) + static_cast<std::size_t>(h)) *
         static_cast<std::size_t>(s.key_dim) * static_cast<std::size_t>(s.value_dim);
}

}  // namespace expt::kernels
