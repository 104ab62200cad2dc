#include "kernels/attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/elementwise_math.hpp"
#include "kernels/gemm.hpp"

namespace expt::kernels {

std::size_t attention_reference_workspace_size(int seq_len) {
  return 2 * static_cast<std::size_t>(seq_len) * static_cast<std::size_t>(seq_len);
}

namespace {

// Offset of head h of sequence b in a [batch, seq_len, heads, head_dim] buffer.
std::size_t head_offset(const AttentionShape& s, int b, int h) {
  return static_cast<std::size_t>(b) * s.seq_len * s.heads * s.head_dim + static_cast<std::size_t>(h) * s.head_dim;
}

// P = s Q K^T of one head into `probs` [T, T], then the causal softmax in place given lse:
//   P_ij = exp(S_ij - lse_i) for j <= i, 0 above the diagonal.
template <class T>
void recompute_probs(const AttentionShape& s, T scale, const T* q, const T* k, const T* lse, T* probs) {
  const int n = s.seq_len, ld = s.heads * s.head_dim;
  gemm(Trans::no, Trans::yes, n, n, s.head_dim, scale, q, ld, k, ld, T(0), probs, n);
  for (int i = 0; i < n; ++i) {
    T* row = probs + static_cast<std::size_t>(i) * n;
    for (int j = 0; j <= i; ++j) row[j] = math::exp(row[j] - lse[i]);
    std::fill(row + i + 1, row + n, T(0));
  }
}

}  // namespace

template <class T>
void attention_reference_forward(const AttentionShape& s, T scale, const T* q, const T* k, const T* v, T* o, T* lse,
                                 T* workspace) {
  const int n = s.seq_len, ld = s.heads * s.head_dim;
  T* probs = workspace;  // [n, n]
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const std::size_t off = head_offset(s, b, h);
      T* lse_bh = lse + (static_cast<std::size_t>(b) * s.heads + h) * n;
      // S = scale * Q K^T: [n, head_dim] x [head_dim, n]; only j <= i is used below.
      gemm(Trans::no, Trans::yes, n, n, s.head_dim, scale, q + off, ld, k + off, ld, T(0), probs, n);
      // Row softmax over j <= i with the row maximum subtracted; the sum in double.
      for (int i = 0; i < n; ++i) {
        T* row = probs + static_cast<std::size_t>(i) * n;
        const T row_max = *std::max_element(row, row + i + 1);
        double sum = 0;
        for (int j = 0; j <= i; ++j) {
          row[j] = math::exp(row[j] - row_max);
          sum += static_cast<double>(row[j]);
        }
        const T inv_sum = static_cast<T>(1.0 / sum);
        for (int j = 0; j <= i; ++j) row[j] *= inv_sum;
        std::fill(row + i + 1, row + n, T(0));
        lse_bh[i] = row_max + static_cast<T>(std::log(sum));
      }
      // O = P V: [n, n] x [n, head_dim].
      gemm(Trans::no, Trans::no, n, s.head_dim, n, T(1), probs, n, v + off, ld, T(0), o + off, ld);
    }
}

// With P the probabilities and dO the output gradient (per head):
//   dV = P^T dO
//   dP = dO V^T
//   dS_ij = P_ij (dP_ij - D_i),  D_i = sum_j P_ij dP_ij = sum_d dO_id O_id  (softmax backward)
//   dQ = s dS K,   dK = s dS^T Q
template <class T>
void attention_reference_backward(const AttentionShape& s, T scale, const T* q, const T* k, const T* v, const T* o,
                                  const T* lse, const T* dout, T* dq, T* dk, T* dv, T* workspace) {
  const int n = s.seq_len, d = s.head_dim, ld = s.heads * s.head_dim;
  T* probs = workspace;                                      // [n, n]
  T* dscores = workspace + static_cast<std::size_t>(n) * n;  // [n, n]: dP, then dS in place
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const std::size_t off = head_offset(s, b, h);
      const T* lse_bh = lse + (static_cast<std::size_t>(b) * s.heads + h) * n;
      recompute_probs(s, scale, q + off, k + off, lse_bh, probs);
      // dV = P^T dO: [n, n]^T x [n, d].
      gemm(Trans::yes, Trans::no, n, d, n, T(1), probs, n, dout + off, ld, T(0), dv + off, ld);
      // dP = dO V^T: [n, d] x [d, n].
      gemm(Trans::no, Trans::yes, n, n, d, T(1), dout + off, ld, v + off, ld, T(0), dscores, n);
      for (int i = 0; i < n; ++i) {
        const T* o_row = o + off + static_cast<std::size_t>(i) * ld;
        const T* do_row = dout + off + static_cast<std::size_t>(i) * ld;
        double dot = 0;
        for (int c = 0; c < d; ++c) dot += static_cast<double>(do_row[c]) * static_cast<double>(o_row[c]);
        const T row_d = static_cast<T>(dot);
        const T* p_row = probs + static_cast<std::size_t>(i) * n;
        T* ds_row = dscores + static_cast<std::size_t>(i) * n;
        for (int j = 0; j <= i; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_d);
        std::fill(ds_row + i + 1, ds_row + n, T(0));
      }
      // dQ = s dS K: [n, n] x [n, d];  dK = s dS^T Q: [n, n]^T x [n, d].
      gemm(Trans::no, Trans::no, n, d, n, scale, dscores, n, k + off, ld, T(0), dq + off, ld);
      gemm(Trans::yes, Trans::no, n, d, n, scale, dscores, n, q + off, ld, T(0), dk + off, ld);
    }
}

template <class T>
void rope_table(int seq_len, int head_dim, double theta, T* cos_table, T* sin_table) {
  const int half = head_dim / 2;
  for (int p = 0; p < seq_len; ++p)
    for (int i = 0; i < half; ++i) {
      const double inv_freq = std::pow(theta, -2.0 * i / head_dim);
      const double angle = p * inv_freq;
      cos_table[static_cast<std::size_t>(p) * half + i] = static_cast<T>(std::cos(angle));
      sin_table[static_cast<std::size_t>(p) * half + i] = static_cast<T>(std::sin(angle));
    }
}

namespace {

// Rotates every head of every row by +angle (sign = 1) or -angle (sign = -1):
//   y1 = x1 cos - sign x2 sin,  y2 = x2 cos + sign x1 sin.
template <class T>
void rope_rotate(const T* cos_table, const T* sin_table, T* x, int batch, int seq_len, int heads, int head_dim,
                 T sign) {
  const int half = head_dim / 2;
  for (int b = 0; b < batch; ++b)
    for (int p = 0; p < seq_len; ++p) {
      const T* c = cos_table + static_cast<std::size_t>(p) * half;
      const T* sn = sin_table + static_cast<std::size_t>(p) * half;
      T* row = x + (static_cast<std::size_t>(b) * seq_len + p) * heads * head_dim;
      for (int h = 0; h < heads; ++h) {
        T* x1 = row + static_cast<std::size_t>(h) * head_dim;
        T* x2 = x1 + half;
        for (int i = 0; i < half; ++i) {
          const T a = x1[i], bb = x2[i];
          x1[i] = a * c[i] - sign * bb * sn[i];
          x2[i] = bb * c[i] + sign * a * sn[i];
        }
      }
    }
}

}  // namespace

template <class T>
void rope_apply(const T* cos_table, const T* sin_table, T* x, int batch, int seq_len, int heads, int head_dim) {
  rope_rotate(cos_table, sin_table, x, batch, seq_len, heads, head_dim, T(1));
}

template <class T>
void rope_backward(const T* cos_table, const T* sin_table, T* dx, int batch, int seq_len, int heads, int head_dim) {
  rope_rotate(cos_table, sin_table, dx, batch, seq_len, heads, head_dim, T(-1));
}

#define EXPT_INSTANTIATE_ATTENTION(T)                                                                               \
  template void attention_reference_forward<T>(const AttentionShape&, T, const T*, const T*, const T*, T*, T*, T*); \
  template void attention_reference_backward<T>(const AttentionShape&, T, const T*, const T*, const T*, const T*,   \
                                                const T*, const T*, T*, T*, T*, T*);                                \
  template void rope_table<T>(int, int, double, T*, T*);                                                            \
  template void rope_apply<T>(const T*, const T*, T*, int, int, int, int);                                          \
  template void rope_backward<T>(const T*, const T*, T*, int, int, int, int);

EXPT_INSTANTIATE_ATTENTION(float)
EXPT_INSTANTIATE_ATTENTION(double)

#undef EXPT_INSTANTIATE_ATTENTION

}  // namespace expt::kernels
