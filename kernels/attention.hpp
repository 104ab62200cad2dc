// Causal softmax attention and rotary position embedding (RoPE) on raw row-major buffers.
//
// Layout shared by every attention kernel here (and by a tiled FlashAttention-2 kernel to come,
// which will take exactly the same arguments):
//   q, k, v, o   [batch, seq_len, heads, head_dim] row-major, i.e. the [batch*seq_len, heads*head_dim]
//                output of the d -> d projections, head h occupying columns [h*head_dim, (h+1)*head_dim)
//   lse          [batch, heads, seq_len]: log-sum-exp of each row of scaled scores, the only softmax
//                statistic the backward needs (it recomputes the probabilities from q, k and lse)
//   workspace    scratch of attention_reference_workspace_size(seq_len) elements, owned by the caller
//                so that repeated calls do not allocate
//
// Per (batch, head), with Q, K, V, O the seq_len x head_dim slices and s the scale:
//   S = s Q K^T,   P_ij = exp(S_ij - lse_i) for j <= i and 0 for j > i,   O = P V
//   lse_i = log sum_{j<=i} exp(S_ij)
#pragma once

#include <cstddef>

namespace expt::kernels {

struct AttentionShape {
  int batch = 0;
  int seq_len = 0;
  int heads = 0;
  int head_dim = 0;
};

// Elements of T the reference kernels need as workspace (two seq_len x seq_len matrices).
std::size_t attention_reference_workspace_size(int seq_len);

// Forward: writes o and lse. The reference materialises the full seq_len x seq_len score matrix of
// one head at a time.
template <class T>
void attention_reference_forward(const AttentionShape& shape, T scale, const T* q, const T* k, const T* v, T* o, T* lse,
                                 T* workspace);

// Backward: from dout = dL/do writes (overwrites) dq, dk, dv. Needs the forward's o and lse.
template <class T>
void attention_reference_backward(const AttentionShape& shape, T scale, const T* q, const T* k, const T* v, const T* o,
                                  const T* lse, const T* dout, T* dq, T* dk, T* dv, T* workspace);

// RoPE, non-interleaved "rotate-half" convention (GPT-NeoX, FLA): for a head vector x of size D,
// position p (0-based) and i in [0, D/2):
//   angle(p, i) = p * theta^(-2i/D)
//   y[i]       = x[i] cos(angle) - x[i + D/2] sin(angle)
//   y[i + D/2] = x[i + D/2] cos(angle) + x[i] sin(angle)
// cos_table, sin_table: [seq_len, head_dim/2], angle computed in double.
template <class T>
void rope_table(int seq_len, int head_dim, double theta, T* cos_table, T* sin_table);

// Rotates x [batch*seq_len, heads*head_dim] in place; row r is at position r % seq_len.
template <class T>
void rope_apply(const T* cos_table, const T* sin_table, T* x, int batch, int seq_len, int heads, int head_dim);

// Backward of rope_apply: the Jacobian is a rotation R, so dx = R^T dy is the rotation by -angle.
// Rotates dx [batch*seq_len, heads*head_dim] in place.
template <class T>
void rope_backward(const T* cos_table, const T* sin_table, T* dx, int batch, int seq_len, int heads, int head_dim);

}  // namespace expt::kernels
