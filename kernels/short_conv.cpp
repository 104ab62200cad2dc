#include "kernels/short_conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/elementwise_math.hpp"
#include "kernels/simd_lanes.hpp"

namespace expt::kernels {

namespace {

std::size_t zu(int x) { return static_cast<std::size_t>(x); }

void check_shape(const ShortConvShape& s) {
  if (s.batch < 0 || s.seq_len < 0 || s.channels < 0 || s.width < 1)
    throw std::invalid_argument("short_conv: negative dimension or width < 1");
}

using math::sigmoid;

// weight [channels, width] -> transposed [width, channels], so that tap i is a contiguous row.
template <class T>
std::vector<T> transpose_weight(const ShortConvShape& s, const T* weight) {
  std::vector<T> wt(zu(s.width) * zu(s.channels));
  for (int c = 0; c < s.channels; ++c)
    for (int i = 0; i < s.width; ++i) wt[zu(i) * zu(s.channels) + zu(c)] = weight[zu(c) * zu(s.width) + zu(i)];
  return wt;
}

// pre_t = sum_i wt[i] (.) x_{t-W+1+i} over the taps that fall inside the sequence; x points at the
// sequence's first row.
// The first tap assigns (the same value as adding it to zero), so the row is written once, not
// zeroed first.
template <class T>
void pre_activation_row(const ShortConvShape& s, const T* x, const T* wt, int t, T* pre) {
  const int D = s.channels;
  const int first = std::max(0, s.width - 1 - t);
  for (int i = first; i < s.width; ++i) {
    const T* x_row = x + zu(t - s.width + 1 + i) * zu(D);
    const T* w_row = wt + zu(i) * zu(D);
    if (i == first)
      for (int c = 0; c < D; ++c) pre[c] = w_row[c] * x_row[c];
    else
      for (int c = 0; c < D; ++c) pre[c] += w_row[c] * x_row[c];
  }
}

// dx_u = sum over the taps i with t = u + W - 1 - i in [u, last] of wt[i] (.) dpre_t, t ascending
// (the order in which the scatter form adds them); dpre_t is row t % W of the ring.
template <class T>
void gather_dx_row(const ShortConvShape& s, const T* wt, const T* ring, int u, int last, T* dx_row) {
  const int D = s.channels, W = s.width;
  for (int t = u; t <= std::min(last, u + W - 1); ++t) {
    const T* w_row = wt + zu(u + W - 1 - t) * zu(D);
    const T* d_row = ring + zu(t % W) * zu(D);
    if (t == u)
      for (int c = 0; c < D; ++c) dx_row[c] = w_row[c] * d_row[c];
    else
      for (int c = 0; c < D; ++c) dx_row[c] += w_row[c] * d_row[c];
  }
}

// Width 4 (every mixer's default) in float: the channels in the lanes of a register group
// (kernels/simd_lanes.hpp), a scan along time per group that keeps the last three inputs, the
// last three dpre rows and the four weight-gradient taps in registers. Per token a group loads
// x_t (and dy_t), stores y_t (or dx_{t-3}), and nothing else touches memory. The row-at-a-time form
// this replaces (a pass over all channels per token, the taps, their gradients and the dpre ring
// loaded and stored on every row, one long exp-and-divide dependency chain per element) ran its
// backward at 0.78-1.25 ns per element on a Zen 5, this form at 0.56-0.61 (bench_mixer_kernels
// ShortConvModel; docs/performance.md).
// Rows before the start of a sequence are zeros, so every row runs the same operations:
// pre = w0 x_{t-3}, then one fma per tap, taps ascending.
//
// A group walks down its column of the [rows, D] buffers with a stride of D floats:
// - the hardware prefetchers follow that late when the rows come from DRAM (the backward's x was
//   written by the forward long before), so each row is prefetched kPrefetchRows ahead (without
//   it the cold forward was slower than the row form it replaces; with it, 23-30 GB/s on the Zen 5);
// - a group's vector straddles two cache lines unless the buffer is 64-byte aligned, and the
//   neighbouring group reads the other half of those lines a whole column later, after they were
//   evicted: the layers' buffers are util::AlignedVector or Workspace memory, both aligned.
constexpr int kPrefetchRows = 16;

template <class L>
struct Width4Taps {
  using V = typename L::V;
  V w0, w1, w2, w3;
  Width4Taps(const float* wt, int D, int c)
      : w0(L::load(wt + c)), w1(L::load(wt + D + c)), w2(L::load(wt + 2 * D + c)), w3(L::load(wt + 3 * D + c)) {}
  // pre_t from x_{t-3}, x_{t-2}, x_{t-1}, x_t.
  V pre(V x3, V x2, V x1, V x0) const {
    V p = L::mul(w0, x3);
    p = L::fma(w1, x2, p);
    p = L::fma(w2, x1, p);
    return L::fma(w3, x0, p);
  }
  // dx_u from dpre_u, dpre_{u+1}, dpre_{u+2}, dpre_{u+3}: the taps that read x_u, t ascending.
  V dx(V d3, V d2, V d1, V d0) const {
    V g = L::mul(w3, d3);
    g = L::fma(w2, d2, g);
    g = L::fma(w1, d1, g);
    return L::fma(w0, d0, g);
  }
};

// y for the channels c .. c + L::width - 1 of every row.
template <class L>
void forward_group_width4(const ShortConvShape& s, const float* x, const float* wt, float* y, int c) {
  using V = typename L::V;
  const int D = s.channels;
  const Width4Taps<L> taps(wt, D, c);
  for (int b = 0; b < s.batch; ++b) {
    const std::size_t first = zu(b) * zu(s.seq_len) * zu(D) + zu(c);
    const float* xb = x + first;
    float* yb = y + first;
    V x3 = L::set(0.0f), x2 = x3, x1 = x3;  // x_{t-3}, x_{t-2}, x_{t-1}
    for (int t = 0; t < s.seq_len; ++t) {
      if (t + kPrefetchRows < s.seq_len) __builtin_prefetch(xb + zu(t + kPrefetchRows) * zu(D));
      const V x0 = L::load(xb + zu(t) * zu(D));
      const V p = taps.pre(x3, x2, x1, x0);
      L::store(yb + zu(t) * zu(D), L::mul(p, lanes::sigmoid<L>(p)));
      x3 = x2;
      x2 = x1;
      x1 = x0;
    }
  }
}

// dx for the channels c .. c + L::width - 1 of every row, and their weight gradient into dwt
// (transposed, [4, D]), summed over the sequences in order and over t ascending.
template <class L>
void backward_group_width4(const ShortConvShape& s, const float* x, const float* wt, const float* dy, float* dx,
                           float* dwt, int c) {
  using V = typename L::V;
  const int D = s.channels, T = s.seq_len;
  const Width4Taps<L> taps(wt, D, c);
  const V zero = L::set(0.0f), one = L::set(1.0f);
  V dw0 = zero, dw1 = zero, dw2 = zero, dw3 = zero;
  for (int b = 0; b < s.batch; ++b) {
    const std::size_t first = zu(b) * zu(T) * zu(D) + zu(c);
    const float *xb = x + first, *dyb = dy + first;
    float* dxb = dx + first;
    V x3 = zero, x2 = zero, x1 = zero;  // x_{t-3}, x_{t-2}, x_{t-1}
    V d3 = zero, d2 = zero, d1 = zero;  // dpre_{t-3}, dpre_{t-2}, dpre_{t-1}
    for (int t = 0; t < T; ++t) {
      if (t + kPrefetchRows < T) {
        __builtin_prefetch(xb + zu(t + kPrefetchRows) * zu(D));
        __builtin_prefetch(dyb + zu(t + kPrefetchRows) * zu(D));
      }
      const V x0 = L::load(xb + zu(t) * zu(D));
      const V p = taps.pre(x3, x2, x1, x0);
      // dpre_t = dy_t SiLU'(pre_t), SiLU'(p) = sg (1 + p (1 - sg)).
      const V sg = lanes::sigmoid<L>(p);
      const V d0 = L::mul(L::mul(L::load(dyb + zu(t) * zu(D)), sg), L::fma(p, L::sub(one, sg), one));
      dw0 = L::fma(x3, d0, dw0);
      dw1 = L::fma(x2, d0, dw1);
      dw2 = L::fma(x1, d0, dw2);
      dw3 = L::fma(x0, d0, dw3);
      if (t >= 3) L::store(dxb + zu(t - 3) * zu(D), taps.dx(d3, d2, d1, d0));
      x3 = x2;
      x2 = x1;
      x1 = x0;
      d3 = d2;
      d2 = d1;
      d1 = d0;
    }
    // The last three rows of dx, u = T-3 .. T-1 (those with u >= 0 when T < 3): d3 holds dpre_u,
    // and dpre past the end is zero.
    for (int u = T - 3; u < T; ++u) {
      if (u >= 0) L::store(dxb + zu(u) * zu(D), taps.dx(d3, d2, d1, zero));
      d3 = d2;
      d2 = d1;
      d1 = zero;
    }
  }
  L::store(dwt + c, dw0);
  L::store(dwt + D + c, dw1);
  L::store(dwt + 2 * D + c, dw2);
  L::store(dwt + 3 * D + c, dw3);
}

// Runs group(c, lanes) over the channels: whole groups of the chosen width, then the rest one
// channel at a time. vector_bytes: 0 for the target's widest, 64 (AVX-512), 32 (AVX2) or 4 (one
// lane); a channel's result is the same at every width (simd_lanes.hpp).
template <class Group>
void for_channel_groups(int D, int vector_bytes, Group&& group) {
  int c = 0;
  [[maybe_unused]] auto whole_groups = [&](auto lanes) {
    using L = decltype(lanes);
    for (; c + L::width <= D; c += L::width) group(c, lanes);
  };
  if (vector_bytes == 0) {
#if defined(EXPT_HAVE_AVX512_LANES)
    vector_bytes = 64;
#elif defined(EXPT_HAVE_AVX2_LANES)
    vector_bytes = 32;
#else
    vector_bytes = 4;
#endif
  }
  if (vector_bytes == 64) {
#if defined(EXPT_HAVE_AVX512_LANES)
    whole_groups(Avx512Lanes{});
#else
    throw std::invalid_argument("short_conv: 64-byte vectors need AVX-512F");
#endif
  } else if (vector_bytes == 32) {
#if defined(EXPT_HAVE_AVX2_LANES)
    whole_groups(Avx2Lanes{});
#else
    throw std::invalid_argument("short_conv: 32-byte vectors need AVX2 and FMA");
#endif
  } else if (vector_bytes != 4) {
    throw std::invalid_argument("short_conv: vector_bytes must be 0, 4, 32 or 64");
  }
  for (; c < D; ++c) group(c, ScalarLanes{});
}

}  // namespace

template <class T>
void short_conv_forward(const ShortConvShape& s, const T* x, const T* weight, T* y, int vector_bytes) {
  check_shape(s);
  const int D = s.channels;
  const std::vector<T> wt = transpose_weight(s, weight);
  if constexpr (std::is_same_v<T, float>) {
    if (s.width == 4) {
      for_channel_groups(D, vector_bytes,
                         [&](int c, auto lanes) { forward_group_width4<decltype(lanes)>(s, x, wt.data(), y, c); });
      return;
    }
  }
  for (int b = 0; b < s.batch; ++b) {
    const T* xb = x + zu(b) * zu(s.seq_len) * zu(D);
    T* yb = y + zu(b) * zu(s.seq_len) * zu(D);
    for (int t = 0; t < s.seq_len; ++t) {
      T* y_row = yb + zu(t) * zu(D);
      pre_activation_row(s, xb, wt.data(), t, y_row);
      for (int c = 0; c < D; ++c) y_row[c] *= sigmoid(y_row[c]);
    }
  }
}

// Per sequence, t ascending: dpre_t into a ring of the last W rows, the weight gradient taps of
// row t, then dx_{t-W+1}, whose W contributions are all known now (gathered: dx is written once,
// neither zeroed first nor read back per tap); the last W - 1 rows of dx at the end.
template <class T>
void short_conv_backward(const ShortConvShape& s, const T* x, const T* weight, const T* dy, T* dx, T* dweight,
                         int vector_bytes) {
  check_shape(s);
  const int D = s.channels, W = s.width;
  const std::vector<T> wt = transpose_weight(s, weight);
  std::vector<T> dwt(wt.size(), T(0));
  if constexpr (std::is_same_v<T, float>) {
    if (W == 4) {
      for_channel_groups(D, vector_bytes, [&](int c, auto lanes) {
        backward_group_width4<decltype(lanes)>(s, x, wt.data(), dy, dx, dwt.data(), c);
      });
      for (int c = 0; c < D; ++c)
        for (int i = 0; i < W; ++i) dweight[zu(c) * zu(W) + zu(i)] = dwt[zu(i) * zu(D) + zu(c)];
      return;
    }
  }
  std::vector<T> ring(zu(W) * zu(D));
  for (int b = 0; b < s.batch; ++b) {
    const T* xb = x + zu(b) * zu(s.seq_len) * zu(D);
    const T* dyb = dy + zu(b) * zu(s.seq_len) * zu(D);
    T* dxb = dx + zu(b) * zu(s.seq_len) * zu(D);
    for (int t = 0; t < s.seq_len; ++t) {
      // dpre = dy (.) SiLU'(pre), pre recomputed.
      T* dpre = ring.data() + zu(t % W) * zu(D);
      pre_activation_row(s, xb, wt.data(), t, dpre);
      const T* dy_row = dyb + zu(t) * zu(D);
      for (int c = 0; c < D; ++c) {
        const T p = dpre[zu(c)], sg = sigmoid(p);
        dpre[zu(c)] = dy_row[c] * sg * (T(1) + p * (T(1) - sg));
      }
      // dwt[i] += x_{t-W+1+i} (.) dpre over the taps inside the sequence.
      for (int i = std::max(0, W - 1 - t); i < W; ++i) {
        const std::size_t r = zu(t - W + 1 + i) * zu(D);
        T* dw_row = dwt.data() + zu(i) * zu(D);
        for (int c = 0; c < D; ++c) dw_row[c] += xb[r + zu(c)] * dpre[zu(c)];
      }
      if (t - W + 1 >= 0) gather_dx_row(s, wt.data(), ring.data(), t - W + 1, t, dxb + zu(t - W + 1) * zu(D));
    }
    for (int u = std::max(0, s.seq_len - W + 1); u < s.seq_len; ++u)
      gather_dx_row(s, wt.data(), ring.data(), u, s.seq_len - 1, dxb + zu(u) * zu(D));
  }
  for (int c = 0; c < D; ++c)
    for (int i = 0; i < W; ++i) dweight[zu(c) * zu(W) + zu(i)] = dwt[zu(i) * zu(D) + zu(c)];
}

template <class T>
void short_conv_reference_forward(const ShortConvShape& s, const T* x, const T* weight, T* y) {
  check_shape(s);
  const int D = s.channels, W = s.width;
  for (int b = 0; b < s.batch; ++b)
    for (int c = 0; c < D; ++c)
      for (int t = 0; t < s.seq_len; ++t) {
        T pre = 0;
        for (int i = 0; i < W; ++i) {
          const int src = t - W + 1 + i;
          if (src >= 0) pre += weight[zu(c) * zu(W) + zu(i)] * x[(zu(b) * zu(s.seq_len) + zu(src)) * zu(D) + zu(c)];
        }
        y[(zu(b) * zu(s.seq_len) + zu(t)) * zu(D) + zu(c)] = pre * sigmoid(pre);
      }
}

template <class T>
void short_conv_reference_backward(const ShortConvShape& s, const T* x, const T* weight, const T* dy, T* dx,
                                   T* dweight) {
  check_shape(s);
  const int D = s.channels, W = s.width;
  std::fill(dx, dx + zu(s.batch) * zu(s.seq_len) * zu(D), T(0));
  std::fill(dweight, dweight + zu(D) * zu(W), T(0));
  auto at = [&](int b, int t, int c) { return (zu(b) * zu(s.seq_len) + zu(t)) * zu(D) + zu(c); };
  for (int b = 0; b < s.batch; ++b)
    for (int c = 0; c < D; ++c)
      for (int t = 0; t < s.seq_len; ++t) {
        T pre = 0;
        for (int i = 0; i < W; ++i)
          if (t - W + 1 + i >= 0) pre += weight[zu(c) * zu(W) + zu(i)] * x[at(b, t - W + 1 + i, c)];
        const T sg = sigmoid(pre);
        const T dpre = dy[at(b, t, c)] * sg * (T(1) + pre * (T(1) - sg));
        for (int i = 0; i < W; ++i) {
          const int src = t - W + 1 + i;
          if (src < 0) continue;
          dx[at(b, src, c)] += weight[zu(c) * zu(W) + zu(i)] * dpre;
          dweight[zu(c) * zu(W) + zu(i)] += x[at(b, src, c)] * dpre;
        }
      }
}

#define EXPT_INSTANTIATE_SHORT_CONV(T)                                                                    \
  template void short_conv_forward<T>(const ShortConvShape&, const T*, const T*, T*, int);                \
  template void short_conv_backward<T>(const ShortConvShape&, const T*, const T*, const T*, T*, T*, int); \
  template void short_conv_reference_forward<T>(const ShortConvShape&, const T*, const T*, T*);           \
  template void short_conv_reference_backward<T>(const ShortConvShape&, const T*, const T*, const T*, T*, T*);

EXPT_INSTANTIATE_SHORT_CONV(float)
EXPT_INSTANTIATE_SHORT_CONV(double)

#undef EXPT_INSTANTIATE_SHORT_CONV

}  // namespace expt::kernels
