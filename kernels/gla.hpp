// Gated Linear Attention (GLA) on raw row-major buffers: a recurrent reference and the chunked
// algorithm with secondary (sub-)chunking, forward and backward (docs/derivations/gla.md).
//
// Per (batch, head), with the K-major state S_t in R^{d_k x d_v} (docs/derivations/gla.md), column vectors
// q_t, k_t, g_t in R^{d_k}, v_t in R^{d_v}, and the per-channel log-decay g_t <= 0:
//   S_t = Diag(exp(g_t)) S_{t-1} + k_t v_t^T
//   o_t = scale * S_t^T q_t                       (the output reads the state after the update)
// S_{-1} is the initial state (zero when not given); the final state is S_{T-1}.
//
// Layout: kernels/recurrent.hpp (g: [batch, seq_len, heads, key_dim], one log-decay per channel).
//
// Numerics: every decay factor the kernels form is exp of a non-positive number, built as a product
// of per-token gates a = exp(g) <= 1 over a span that never crosses the chunk; nothing like exp(-b)
// of a cumulative log-gate is ever formed, so strong gates underflow to 0 instead of overflowing.
// The math is exact for any g, but g > 0 is outside the contract (factors then exceed 1).
//
// Scratch memory of the chunked kernels (O(chunk_size * (d_k + chunk_size)), plus one d_k x d_v
// state per chunk and four [seq_len, d_k] gate-factor arrays of one head in the backward) is kept
// per thread between calls and only grows; the recurrent references allocate theirs in each call.
#pragma once

#include <type_traits>

#include "kernels/recurrent.hpp"

namespace expt::kernels {

using GlaShape = RecurrentShape;

// Chunk length C (fla's default) and sub-chunk length c of the chunked kernels. Chunks cover
// [i*C, min((i+1)*C, T)); inside a chunk, sub-chunks of c rows split the intra-chunk score matrix
// into off-diagonal blocks (plain matrix products, each side scaled by a factor <= 1 relative to the
// first row of the query sub-chunk) and diagonal blocks (elementwise). Any C >= 1 and c >= 1 work.
//
// vector_bytes is the width of the vectors the element-wise parts compute with (the diagonal score
// blocks, the gate scans, the chunk backward's element-wise work): 0 is the build target's widest
// (64 with AVX-512, 32 with AVX/AVX2, else 16); 16, 32 or 64 force one, so that tests run every
// width on any machine. Every channel is still grouped in 16s (kernels/reduction.hpp: Lanes) and
// each lane does the same operations at every width, so the width changes speed, never a bit of
// the results (tests/kernels/gla_test.cpp; docs/decisions.md 147).
struct GlaChunking {
  int chunk_size = 64;
  int sub_chunk_size = 16;
  int vector_bytes = 0;
};

// T is deduced from the GlaInputs alone (scale and the nullable pointers do not take part), so a
// literal scale or a plain nullptr can be passed.
template <class T>
using GlaScalar = std::type_identity_t<T>;

// Recurrent reference (docs/derivations/gla.md "Recurrence"): one token at a time, O(d_k d_v) per
// token. Writes out and, when non-null, final_state.
template <class T>
void gla_recurrent_forward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, T* out,
                           GlaScalar<T>* final_state);

// Backward of the recurrent form (docs/derivations/gla.md "Recurrent backward"). dout = dL/dout;
// dfinal_state = dL/dS_{T-1} or nullptr for zero. A forward sweep recomputes the states and
// dq_t = scale S_t dout_t; a reverse sweep carries D = dL/dS_t and gets dk, dv from it and dg by the
// reverse cumulative sum
//   dg_t = sum_{u >= t} (q_u (.) dq_u - k_u (.) dk_u) + rowsum(S_{T-1} (.) dS_{T-1}).
template <class T>
void gla_recurrent_backward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, const T* dout,
                            const GlaScalar<T>* dfinal_state, const GlaGradients<T>& grads);

// Chunked form ((F1)-(F5), docs/derivations/gla.md): per chunk, the inter-chunk part (scaled, decayed queries times the
// entering state), the intra-chunk part through the causal score matrix A (sub-chunked), then the
// state passed on. Same contract as the recurrent forward.
template <class T>
void gla_chunked_forward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, T* out,
                         GlaScalar<T>* final_state, const GlaChunking& chunking = {});

// Backward of the chunked form ((D1)-(D6), docs/derivations/gla.md): a forward sweep stores every chunk's entering
// state, then one reverse sweep over chunks carries dH = dL/dS_out(chunk) and computes dq, dk, dv
// chunk by chunk, dg by the reverse cumulative sum inside the chunk plus the chunk-boundary term.
// Same contract as the recurrent backward.
template <class T>
void gla_chunked_backward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, const T* dout,
                          const GlaScalar<T>* dfinal_state, const GlaGradients<T>& grads,
                          const GlaChunking& chunking = {});

}  // namespace expt::kernels
