// The (gated) delta rule on raw row-major buffers: a recurrent reference and the chunked WY/UT
// algorithm, forward and backward (docs/derivations/delta_rule.md).
//
// Per (batch, head), with the K-major state S_t in R^{d_k x d_v} (the DeltaNet papers
// store the transpose), column vectors q_t, k_t in R^{d_k}, v_t in R^{d_v}, scalars beta_t and g_t:
//   a_t = exp(g_t)                               (a_t = 1 when there is no gate: plain DeltaNet)
//   S'  = a_t S_{t-1}
//   u_t = beta_t (v_t - S'^T k_t)                (error-corrected "pseudo value")
//   S_t = S' + k_t u_t^T  =  a_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
//   o_t = scale * S_t^T q_t
// S_{-1} is the initial state (zero when not given); the final state is S_{T-1}. The kernels do not
// normalise q or k: the layer L2-normalises them (and chooses beta in [0,1] or [0,2]).
//
// Layout: kernels/recurrent.hpp (beta, g: [batch, seq_len, heads], g = log-decay, <= 0 for a
// decaying gate).
#pragma once

#include <type_traits>

#include "kernels/recurrent.hpp"

namespace expt::kernels {

using DeltaRuleShape = RecurrentShape;

// Chunk length of the chunked kernels unless the caller picks another (fla's default).
inline constexpr int kDeltaRuleDefaultChunk = 64;

// Recurrent reference: one token at a time, O(d_k d_v) per token. Writes out and, when non-null,
// final_state.
template <class T>
void delta_rule_recurrent_forward(const DeltaRuleShape& shape, T scale, const DeltaRuleInputs<T>& in, T* out,
                                  std::type_identity_t<T>* final_state);

// Backward of the recurrent form in reverse time (docs/derivations/delta_rule.md). dout = dL/dout; dfinal_state =
// dL/dS_{T-1} or nullptr for zero. States are recomputed from checkpoints kept every
// kDeltaRuleDefaultChunk steps, never reconstructed by subtracting updates.
template <class T>
void delta_rule_recurrent_backward(const DeltaRuleShape& shape, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                                   const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads);

// Chunked WY/UT form ((U1)-(U6), docs/derivations/delta_rule.md): chunks of chunk_size tokens (the
// last may be shorter; a chunk_size above seq_len means one chunk, below 1 is taken as 1), the
// intra-chunk part through the UT transform A = (I + tril(diag(beta) K K^T (.) decay, -1))^{-1} and
// matrix products, the state passed from chunk to chunk. Same contract as the recurrent forward.
template <class T>
void delta_rule_chunked_forward(const DeltaRuleShape& shape, T scale, const DeltaRuleInputs<T>& in, T* out,
                                std::type_identity_t<T>* final_state, int chunk_size = kDeltaRuleDefaultChunk);

// Backward of the chunked form: one forward sweep storing each chunk's entering state and WY
// factors (per head, in per-thread scratch), then one reverse sweep over chunks that
// back-propagates through them ((B1)-(B7), docs/derivations/delta_rule.md). Same contract as
// the recurrent backward.
template <class T>
void delta_rule_chunked_backward(const DeltaRuleShape& shape, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                                 const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads,
                                 int chunk_size = kDeltaRuleDefaultChunk);

// The chunked kernels on an interleaved sequence of `steps` virtual steps per token (DeltaProduct's,
// delta_product.hpp): shape.seq_len counts tokens; k, v, beta and their gradients have one row per
// virtual step, [batch, seq_len * steps, heads, ...] with virtual step t * steps + j for step j of
// token t; q, g, out, dout and dq, dg one row per token. The query of token t is read at its last
// virtual step (zero at the others, whose outputs are dropped) and its gate at its first (0 at the
// others); chunk_size counts virtual steps. steps = 1 is delta_rule_chunked_forward / _backward.
template <class T>
void delta_rule_interleaved_forward(const DeltaRuleShape& shape, int steps, T scale, const DeltaRuleInputs<T>& in,
                                    T* out, std::type_identity_t<T>* final_state,
                                    int chunk_size = kDeltaRuleDefaultChunk);
template <class T>
void delta_rule_interleaved_backward(const DeltaRuleShape& shape, int steps, T scale, const DeltaRuleInputs<T>& in,
                                     const T* dout, const std::type_identity_t<T>* dfinal_state,
                                     const DeltaRuleGradients<T>& grads, int chunk_size = kDeltaRuleDefaultChunk);

}  // namespace expt::kernels
