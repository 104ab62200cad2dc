// Software prefetch of strided rows for the chunked kernels (decision 168).
//
// The delta-rule chunked kernels walk one head's rows of q, k, v and dO in the layer's
// [tokens, heads * d] buffers: rows heads * d elements apart (1 KiB at d_model 256, four rows to
// a page), a pattern the hardware prefetchers do not fetch ahead of the chunk, so the first
// product over a chunk's rows waited on memory. They call prefetch_rows for the next chunk's rows
// while the current one computes. Into L2 (prefetcht1, locality 2): L1 holds the current chunk's
// factors. A hint: no value depends on it. (GLA's chunked kernels, whose rows at d_model 256 are
// half as wide, measured no gain from the same and do not use it: docs/performance.md.)
//
// Always inlined: called normally, GCC's interprocedural analysis judges a function made only of
// __builtin_prefetch free of side effects and deletes its calls (a first version compiled to
// nothing; `objdump -d build/release/expt | grep prefetcht1` shows the instructions).
#pragma once

#include <cstddef>

namespace expt::kernels {

// rows x cols elements from p, row stride ld (elements); for_write fetches the lines for writing.
template <class T>
[[gnu::always_inline]] inline void prefetch_rows(const T* p, int rows, int cols, std::size_t ld,
                                                 bool for_write = false) {
  constexpr int line = static_cast<int>(64 / sizeof(T));
  for (int r = 0; r < rows; ++r) {
    const T* row = p + static_cast<std::size_t>(r) * ld;
    for (int m = 0; m < cols; m += line) {
      if (for_write)
        __builtin_prefetch(row + m, 1, 2);
      else
        __builtin_prefetch(row + m, 0, 2);
    }
  }
}

}  // namespace expt::kernels
