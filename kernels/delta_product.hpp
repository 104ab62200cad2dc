// DeltaProduct (docs/derivations/delta_rule.md "DeltaProduct"): n_h generalised Householder steps
// per token, on raw row-major buffers. Per (batch, head), with the K-major state S in R^{d_k x d_v} and a_t = exp(g_t):
//   S_{t,0} = a_t S_{t-1}                                   (gate applied once per token)
//   S_{t,j} = (I - beta_{t,j} k_{t,j} k_{t,j}^T) S_{t,j-1} + beta_{t,j} k_{t,j} v_{t,j}^T,  j = 1..n_h
//   S_t = S_{t,n_h},   o_t = scale * S_t^T q_t              (query read once, after the last step)
// beta is taken as given: the layer supplies sigmoid in (0,1), or 2*sigmoid in (0,2) for
// allow_neg_eigval (with unit keys beta = 2 makes each step an exact reflection).
//
// Computed as the delta rule (delta_rule.hpp) on the virtual sequence of length seq_len * n_h in
// which position t*n_h + j carries step j+1 of token t: its key, value and beta; the gate g_t at
// j = 0 and 0 elsewhere; the query q_t at j = n_h - 1 and 0 elsewhere; only the outputs at
// j = n_h - 1 are kept. The chunked kernels run on that sequence without forming it
// (delta_rule_interleaved_*: they read q, g and write out, dq, dg per token and skip the zero query
// rows), so chunk_size counts virtual steps. The recurrent references build the virtual sequence
// explicitly and run the recurrent delta rule on it.
//
// Memory layout (row-major; the step index j is the slower one inside a token, as in fla's fused
// projections, so k, v and beta already are the virtual sequence and are not copied):
//   q, out         [batch, seq_len, heads, key_dim] / [batch, seq_len, heads, value_dim]
//   k              [batch, seq_len, n_h, heads, key_dim]
//   v              [batch, seq_len, n_h, heads, value_dim]
//   beta           [batch, seq_len, n_h, heads]
//   g              [batch, seq_len, heads]             (nullptr: no forget gate)
//   states         [batch, heads, key_dim, value_dim]
// Gradients have the layout of the tensor they belong to.
#pragma once

#include <type_traits>

#include "kernels/delta_rule.hpp"

namespace expt::kernels {

// The token sequence's shape (seq_len counts tokens) and the steps per token.
struct DeltaProductShape : RecurrentShape {
  int householder_steps = 1;  // n_h
};

// Writes out and, when non-null, final_state. The fields of `in` follow the layout above.
template <class T>
void delta_product_forward(const DeltaProductShape& shape, T scale, const DeltaRuleInputs<T>& in, T* out,
                           std::type_identity_t<T>* final_state, int chunk_size = kDeltaRuleDefaultChunk);

// From dout = dL/dout and dfinal_state (nullptr for zero) overwrites the gradients (same rules for
// optional fields as delta_rule_chunked_backward).
template <class T>
void delta_product_backward(const DeltaProductShape& shape, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                            const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads,
                            int chunk_size = kDeltaRuleDefaultChunk);

// Plain references: the virtual q, g, out (and dout, dq, dg) buffers written out and the
// recurrent delta rule (delta_rule_recurrent_forward / _backward) run on them.
template <class T>
void delta_product_recurrent_forward(const DeltaProductShape& shape, T scale, const DeltaRuleInputs<T>& in, T* out,
                                     std::type_identity_t<T>* final_state);
template <class T>
void delta_product_recurrent_backward(const DeltaProductShape& shape, T scale, const DeltaRuleInputs<T>& in,
                                      const T* dout, const std::type_identity_t<T>* dfinal_state,
                                      const DeltaRuleGradients<T>& grads);

}  // namespace expt::kernels
