#include "kernels/attention_tiled.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "kernels/elementwise_math.hpp"
#include "kernels/gemm.hpp"

namespace expt::kernels {

namespace {

std::size_t zu(int x) { return static_cast<std::size_t>(x); }

// Offset of head h of sequence b in a [batch, seq_len, heads, head_dim] buffer.
std::size_t head_offset(const AttentionShape& s, int b, int h) {
  return (zu(b) * zu(s.seq_len) * zu(s.heads) + zu(h)) * zu(s.head_dim);
}

void check_tiling(const AttentionTiling& t) {
  if (t.query_tile < 1 || t.key_tile < 1) throw std::invalid_argument("attention_tiled: tile sizes must be >= 1");
}

// Number of causal entries of row `row` (absolute position) in a key tile starting at key_start
// with `cols` keys: keys key_start .. row are visible.
int visible_keys(int row, int key_start, int cols) { return std::clamp(row - key_start + 1, 0, cols); }

}  // namespace

std::size_t attention_tiled_workspace_size(const AttentionTiling& t, int seq_len, int head_dim) {
  // forward: scores [Br, Bc], acc [Br, D], m and l [Br];  backward: P and dP [Br, Bc], D [seq_len].
  const std::size_t block = zu(t.query_tile) * zu(t.key_tile);
  const std::size_t forward = block + zu(t.query_tile) * zu(head_dim) + 2 * zu(t.query_tile);
  const std::size_t backward = 2 * block + zu(seq_len);
  return std::max(forward, backward);
}

template <class T>
void attention_tiled_forward(const AttentionShape& s, T scale, const T* q, const T* k, const T* v, T* o, T* lse,
                             T* workspace, const AttentionTiling& tiling) {
  check_tiling(tiling);
  const int n = s.seq_len, d = s.head_dim, ld = s.heads * s.head_dim;
  const int Br = tiling.query_tile, Bc = tiling.key_tile;
  T* scores = workspace;              // [Br, Bc], ld Bc: S, then P in place
  T* acc = scores + zu(Br) * zu(Bc);  // [Br, D]: unnormalised output of the query tile
  T* row_max = acc + zu(Br) * zu(d);  // [Br] m
  T* row_sum = row_max + zu(Br);      // [Br] l
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const std::size_t off = head_offset(s, b, h);
      T* lse_bh = lse + (zu(b) * zu(s.heads) + zu(h)) * zu(n);
      for (int r0 = 0; r0 < n; r0 += Br) {
        const int rows = std::min(Br, n - r0);
        std::fill(row_max, row_max + rows, neg_inf);
        std::fill(row_sum, row_sum + rows, T(0));
        std::fill(acc, acc + zu(rows) * zu(d), T(0));
        // Key tiles J with first key <= last query of the tile.
        for (int c0 = 0; c0 < r0 + rows; c0 += Bc) {
          const int cols = std::min(Bc, n - c0);
          // S = s Q_I K_J^T: [rows, D] x [D, cols].
          gemm(Trans::no, Trans::yes, rows, cols, d, scale, q + off + zu(r0) * zu(ld), ld, k + off + zu(c0) * zu(ld),
               ld, T(0), scores, Bc);
          for (int r = 0; r < rows; ++r) {
            T* row = scores + zu(r) * zu(Bc);
            const int visible = visible_keys(r0 + r, c0, cols);
            std::fill(row + visible, row + cols, T(0));
            if (visible == 0) continue;  // the row has no causal key in this tile: P row = 0
            const T m_new = std::max(row_max[r], *std::max_element(row, row + visible));
            // exp(m - m') rescales what was accumulated under the old maximum (0 on the first tile).
            const T correction = math::exp(row_max[r] - m_new);
            T sum = 0;
            for (int j = 0; j < visible; ++j) {
              row[j] = math::exp(row[j] - m_new);
              sum += row[j];
            }
            row_sum[r] = correction * row_sum[r] + sum;
            row_max[r] = m_new;
            T* acc_row = acc + zu(r) * zu(d);
            for (int c = 0; c < d; ++c) acc_row[c] *= correction;
          }
          // acc += P V_J: [rows, cols] x [cols, D].
          gemm(Trans::no, Trans::no, rows, d, cols, T(1), scores, Bc, v + off + zu(c0) * zu(ld), ld, T(1), acc, d);
        }
        for (int r = 0; r < rows; ++r) {
          const T inv = T(1) / row_sum[r];
          T* o_row = o + off + zu(r0 + r) * zu(ld);
          const T* acc_row = acc + zu(r) * zu(d);
          for (int c = 0; c < d; ++c) o_row[c] = acc_row[c] * inv;
          lse_bh[r0 + r] = row_max[r] + std::log(row_sum[r]);
        }
      }
    }
}

template <class T>
void attention_tiled_backward(const AttentionShape& s, T scale, const T* q, const T* k, const T* v, const T* o,
                              const T* lse, const T* dout, T* dq, T* dk, T* dv, T* workspace,
                              const AttentionTiling& tiling) {
  check_tiling(tiling);
  const int n = s.seq_len, d = s.head_dim, ld = s.heads * s.head_dim;
  const int Br = tiling.query_tile, Bc = tiling.key_tile;
  T* probs = workspace;                    // [Br, Bc], ld Bc: P
  T* dscores = probs + zu(Br) * zu(Bc);    // [Br, Bc], ld Bc: dP, then dS in place
  T* row_dot = dscores + zu(Br) * zu(Bc);  // [seq_len] D_i = dO_i . O_i
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const std::size_t off = head_offset(s, b, h);
      const T* lse_bh = lse + (zu(b) * zu(s.heads) + zu(h)) * zu(n);
      for (int i = 0; i < n; ++i) {
        const T* o_row = o + off + zu(i) * zu(ld);
        const T* do_row = dout + off + zu(i) * zu(ld);
        T dot = 0;
        for (int c = 0; c < d; ++c) dot += do_row[c] * o_row[c];
        row_dot[i] = dot;
        std::fill(dq + off + zu(i) * zu(ld), dq + off + zu(i) * zu(ld) + zu(d), T(0));
        std::fill(dk + off + zu(i) * zu(ld), dk + off + zu(i) * zu(ld) + zu(d), T(0));
        std::fill(dv + off + zu(i) * zu(ld), dv + off + zu(i) * zu(ld) + zu(d), T(0));
      }
      for (int c0 = 0; c0 < n; c0 += Bc) {
        const int cols = std::min(Bc, n - c0);
        const T* k_tile = k + off + zu(c0) * zu(ld);
        const T* v_tile = v + off + zu(c0) * zu(ld);
        T* dk_tile = dk + off + zu(c0) * zu(ld);
        T* dv_tile = dv + off + zu(c0) * zu(ld);
        // Query tiles whose last row reaches the first key of the tile.
        for (int r0 = (c0 / Br) * Br; r0 < n; r0 += Br) {
          const int rows = std::min(Br, n - r0);
          const T* q_tile = q + off + zu(r0) * zu(ld);
          const T* do_tile = dout + off + zu(r0) * zu(ld);
          // P = exp(s Q_I K_J^T - lse_I) on causal entries, 0 elsewhere.
          gemm(Trans::no, Trans::yes, rows, cols, d, scale, q_tile, ld, k_tile, ld, T(0), probs, Bc);
          for (int r = 0; r < rows; ++r) {
            T* row = probs + zu(r) * zu(Bc);
            const int visible = visible_keys(r0 + r, c0, cols);
            for (int j = 0; j < visible; ++j) row[j] = math::exp(row[j] - lse_bh[r0 + r]);
            std::fill(row + visible, row + cols, T(0));
          }
          // dV_J += P^T dO_I: [cols, rows] x [rows, D].
          gemm(Trans::yes, Trans::no, cols, d, rows, T(1), probs, Bc, do_tile, ld, T(1), dv_tile, ld);
          // dP = dO_I V_J^T: [rows, D] x [D, cols];  dS = P (.) (dP - D_i).
          gemm(Trans::no, Trans::yes, rows, cols, d, T(1), do_tile, ld, v_tile, ld, T(0), dscores, Bc);
          for (int r = 0; r < rows; ++r) {
            const T* p_row = probs + zu(r) * zu(Bc);
            T* ds_row = dscores + zu(r) * zu(Bc);
            for (int j = 0; j < cols; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_dot[r0 + r]);
          }
          // dQ_I += s dS K_J: [rows, cols] x [cols, D];  dK_J += s dS^T Q_I: [cols, rows] x [rows, D].
          gemm(Trans::no, Trans::no, rows, d, cols, scale, dscores, Bc, k_tile, ld, T(1), dq + off + zu(r0) * zu(ld),
               ld);
          gemm(Trans::yes, Trans::no, cols, d, rows, scale, dscores, Bc, q_tile, ld, T(1), dk_tile, ld);
        }
      }
    }
}

#define EXPT_INSTANTIATE_ATTENTION_TILED(T)                                                                    \
  template void attention_tiled_forward<T>(const AttentionShape&, T, const T*, const T*, const T*, T*, T*, T*, \
                                           const AttentionTiling&);                                            \
  template void attention_tiled_backward<T>(const AttentionShape&, T, const T*, const T*, const T*, const T*,  \
                                            const T*, const T*, T*, T*, T*, T*, const AttentionTiling&);

EXPT_INSTANTIATE_ATTENTION_TILED(float)
EXPT_INSTANTIATE_ATTENTION_TILED(double)

#undef EXPT_INSTANTIATE_ATTENTION_TILED

}  // namespace expt::kernels
