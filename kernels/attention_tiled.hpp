// Tiled causal softmax attention in the FlashAttention-2 scheme: the forward walks key tiles with an
// online softmax and never holds more than a query tile x key tile block of scores; the backward
// recomputes each block of probabilities from q, k and the forward's lse.
//
// Arguments and layout are those of kernels/attention.hpp (attention_reference_forward/backward):
//   q, k, v, o     [batch, seq_len, heads, head_dim] row-major
//   lse            [batch, heads, seq_len]   log-sum-exp of each row of scaled causal scores
//   workspace      attention_tiled_workspace_size(tiling, seq_len, head_dim) elements, caller-owned
// and the math is the same: S = s Q K^T, P_ij = exp(S_ij - lse_i) for j <= i (0 above), O = P V.
//
// Forward, per query tile I with running row maximum m, row sum l and unnormalised output acc:
//   for each key tile J at or below the diagonal:
//     S = s Q_I K_J^T (causal entries only);  m' = max(m, rowmax S);  P = exp(S - m')
//     l = exp(m - m') l + rowsum P;  acc = Diag(exp(m - m')) acc + P V_J;  m = m'
//   O_I = Diag(1/l) acc,  lse_I = m + log l
// Backward, per key tile J (accumulating dK_J, dV_J) and each query tile I that sees it:
//   P = exp(s Q_I K_J^T - lse_I) (causal),  dV_J += P^T dO_I,  dP = dO_I V_J^T,
//   dS = P (.) (dP - D_I) with D_i = dO_i . O_i,  dQ_I += s dS K_J,  dK_J += s dS^T Q_I
#pragma once

#include <cstddef>

#include "kernels/attention.hpp"

namespace expt::kernels {

// Query tile (rows of Q per block) and key tile (rows of K, V per block); any sizes >= 1.
struct AttentionTiling {
  int query_tile = 64;
  int key_tile = 64;
};

// Elements of T the tiled kernels need as workspace (forward and backward).
std::size_t attention_tiled_workspace_size(const AttentionTiling& tiling, int seq_len, int head_dim);

// Forward: writes o and lse (the same values as attention_reference_forward up to rounding).
template <class T>
void attention_tiled_forward(const AttentionShape& shape, T scale, const T* q, const T* k, const T* v, T* o, T* lse,
                             T* workspace, const AttentionTiling& tiling = {});

// Backward: from dout = dL/do writes (overwrites) dq, dk, dv. Needs the forward's o and lse.
template <class T>
void attention_tiled_backward(const AttentionShape& shape, T scale, const T* q, const T* k, const T* v, const T* o,
                              const T* lse, const T* dout, T* dq, T* dk, T* dv, T* workspace,
                              const AttentionTiling& tiling = {});

}  // namespace expt::kernels
