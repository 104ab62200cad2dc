// Short causal depthwise convolution followed by SiLU (FLA ShortConvolution, docs/derivations/short_conv.md), on raw
// row-major buffers. For channel c and position t (zero padding on the left, no bias):
//   pre_t[c] = sum_{i=0}^{W-1} w[c, i] x_{t-W+1+i}[c]      (w[c, W-1] multiplies the current token)
//   y_t[c]   = SiLU(pre_t[c]) = pre_t[c] sigmoid(pre_t[c])
// Backward, with dpre = dy (.) SiLU'(pre), SiLU'(p) = sigmoid(p) (1 + p (1 - sigmoid(p))):
//   dx_{t-W+1+i}[c] += w[c, i] dpre_t[c],    dw[c, i] = sum_t x_{t-W+1+i}[c] dpre_t[c]
//
// Layout:
//   x, y, dx, dy   [batch, seq_len, channels]   (the projection output, one row per token)
//   weight, dw     [channels, width]            (PyTorch Conv1d weight (D, 1, W) without the 1)
// Sequences of the batch do not see each other. The backward recomputes pre from x and w.
#pragma once

namespace expt::kernels {

struct ShortConvShape {
  int batch = 0;
  int seq_len = 0;
  int channels = 0;
  int width = 4;
};

// Forward: writes y. Vectorised over channels (the weight is transposed once per call). In float
// with width 4 the channels go through lane groups of vector_bytes (0: the target's widest; 64
// AVX-512, 32 AVX2, 4 one lane at a time; every width gives the same bits, so it exists for the
// tests to hold the narrower code paths to the widest); other widths and double ignore it.
template <class T>
void short_conv_forward(const ShortConvShape& shape, const T* x, const T* weight, T* y, int vector_bytes = 0);

// Backward: from dy writes (overwrites) dx and dweight.
template <class T>
void short_conv_backward(const ShortConvShape& shape, const T* x, const T* weight, const T* dy, T* dx, T* dweight,
                         int vector_bytes = 0);

// Plain references with the same contracts: one channel at a time, the formula above term by term.
template <class T>
void short_conv_reference_forward(const ShortConvShape& shape, const T* x, const T* weight, T* y);

template <class T>
void short_conv_reference_backward(const ShortConvShape& shape, const T* x, const T* weight, const T* dy, T* dx,
                                   T* dweight);

}  // namespace expt::kernels
