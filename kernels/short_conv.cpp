#include "kernels/short_conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "kernels/elementwise_math.hpp"

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

// The rows of width 4 (every mixer's default) whose taps all fall inside the sequence, t >= 3, run
// in one pass over the channels, everything per element in registers and stored once. The
// operations per element are the general path's, in its order (the first tap a product, then one
// fma per tap, taps ascending), so both paths give the same bits; the fmas are explicit because
// contracting w0 x0 + w1 x1 may fuse either product. The general path's read-modify-write pass per
// tap made the short convolutions a third of DeltaProduct's time outside the products at d_model
// 256 (docs/performance.md). Every loop below reads and writes disjoint rows (y is not x), so
// `ivdep` lets it vectorise without the runtime alias checks GCC would give up on.
template <class T>
struct Width4Taps {
  const T *x0, *x1, *x2, *x3;  // x_{t-3} .. x_t
  const T *w0, *w1, *w2, *w3;  // taps 0 .. 3 (rows of the transposed weight)
  Width4Taps(int D, const T* x, const T* wt, int t)
      : x0(x + zu(t - 3) * zu(D)), x1(x0 + D), x2(x1 + D), x3(x2 + D), w0(wt), w1(wt + D), w2(w1 + D), w3(w2 + D) {}
  T pre(int c) const {
    T p = w0[c] * x0[c];
    p = std::fma(w1[c], x1[c], p);
    p = std::fma(w2[c], x2[c], p);
    return std::fma(w3[c], x3[c], p);
  }
};

template <class T>
void forward_row_width4(int D, const T* x, const T* wt, int t, T* y_row) {
  const Width4Taps<T> taps(D, x, wt, t);
#pragma GCC ivdep
  for (int c = 0; c < D; ++c) {
    const T p = taps.pre(c);
    y_row[c] = p * sigmoid(p);
  }
}

// Backward row t >= 3: pre_t recomputed, dpre_t = dy_t (.) SiLU'(pre_t) into the ring,
// dw[i] += x_{t-3+i} (.) dpre_t for i ascending, then the gather
// dx_{t-3} = w[3] (.) dpre_{t-3} + w[2] (.) dpre_{t-2} + w[1] (.) dpre_{t-1} + w[0] (.) dpre_t.
template <class T>
void backward_row_width4(int D, const T* x, const T* wt, const T* dy_row, int t, T* ring, T* dwt, T* dx_row) {
  const Width4Taps<T> taps(D, x, wt, t);
  T *dw0 = dwt, *dw1 = dwt + D, *dw2 = dw1 + D, *dw3 = dw2 + D;
  // Ring row u % 4 holds dpre_u: rows of t-3, t-2, t-1 are read; dpre_t replaces t-4's.
  const T *d3 = ring + zu((t - 3) % 4) * zu(D), *d2 = ring + zu((t - 2) % 4) * zu(D),
          *d1 = ring + zu((t - 1) % 4) * zu(D);
  T* d0 = ring + zu(t % 4) * zu(D);
#pragma GCC ivdep
  for (int c = 0; c < D; ++c) {
    const T p = taps.pre(c);
    const T sg = sigmoid(p);
    const T d = dy_row[c] * sg * (T(1) + p * (T(1) - sg));
    dw0[c] = std::fma(taps.x0[c], d, dw0[c]);
    dw1[c] = std::fma(taps.x1[c], d, dw1[c]);
    dw2[c] = std::fma(taps.x2[c], d, dw2[c]);
    dw3[c] = std::fma(taps.x3[c], d, dw3[c]);
    T dx = taps.w3[c] * d3[c];
    dx = std::fma(taps.w2[c], d2[c], dx);
    dx = std::fma(taps.w1[c], d1[c], dx);
    dx = std::fma(taps.w0[c], d, dx);
    dx_row[c] = dx;
    d0[c] = d;
  }
}

}  // namespace

template <class T>
void short_conv_forward(const ShortConvShape& s, const T* x, const T* weight, T* y) {
  check_shape(s);
  const int D = s.channels;
  const std::vector<T> wt = transpose_weight(s, weight);
  for (int b = 0; b < s.batch; ++b) {
    const T* xb = x + zu(b) * zu(s.seq_len) * zu(D);
    T* yb = y + zu(b) * zu(s.seq_len) * zu(D);
    for (int t = 0; t < s.seq_len; ++t) {
      T* y_row = yb + zu(t) * zu(D);
      if (s.width == 4 && t >= 3) {
        forward_row_width4(D, xb, wt.data(), t, y_row);
        continue;
      }
      pre_activation_row(s, xb, wt.data(), t, y_row);
      for (int c = 0; c < D; ++c) y_row[c] *= sigmoid(y_row[c]);
    }
  }
}

// Per sequence, t ascending: dpre_t into a ring of the last W rows, the weight gradient taps of
// row t, then dx_{t-W+1}, whose W contributions are all known now (gathered: dx is written once,
// neither zeroed first nor read back per tap); the last W - 1 rows of dx at the end.
template <class T>
void short_conv_backward(const ShortConvShape& s, const T* x, const T* weight, const T* dy, T* dx, T* dweight) {
  check_shape(s);
  const int D = s.channels, W = s.width;
  const std::vector<T> wt = transpose_weight(s, weight);
  std::vector<T> dwt(wt.size(), T(0)), ring(zu(W) * zu(D));
  for (int b = 0; b < s.batch; ++b) {
    const T* xb = x + zu(b) * zu(s.seq_len) * zu(D);
    const T* dyb = dy + zu(b) * zu(s.seq_len) * zu(D);
    T* dxb = dx + zu(b) * zu(s.seq_len) * zu(D);
    for (int t = 0; t < s.seq_len; ++t) {
      if (W == 4 && t >= 3) {
        backward_row_width4(D, xb, wt.data(), dyb + zu(t) * zu(D), t, ring.data(), dwt.data(), dxb + zu(t - 3) * zu(D));
        continue;
      }
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

#define EXPT_INSTANTIATE_SHORT_CONV(T)                                                               \
  template void short_conv_forward<T>(const ShortConvShape&, const T*, const T*, T*);                \
  template void short_conv_backward<T>(const ShortConvShape&, const T*, const T*, const T*, T*, T*); \
  template void short_conv_reference_forward<T>(const ShortConvShape&, const T*, const T*, T*);      \
  template void short_conv_reference_backward<T>(const ShortConvShape&, const T*, const T*, const T*, T*, T*);

EXPT_INSTANTIATE_SHORT_CONV(float)
EXPT_INSTANTIATE_SHORT_CONV(double)

#undef EXPT_INSTANTIATE_SHORT_CONV

}  // namespace expt::kernels
