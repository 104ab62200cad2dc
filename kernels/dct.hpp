// The orthonormal DCT-II matrix (docs/derivations/dct.md), the fixed basis of DCT-AdamW:
//   C[i][j] = c_i·sqrt(2/s)·cos(π·i·(2j+1)/(2s)),  c_0 = 1/sqrt(2), c_i = 1 (i ≥ 1)
// Row i is frequency i, column j is sample j; C·Cᵀ = Cᵀ·C = I.
#pragma once

#include <span>

namespace expt::kernels {

// Writes the s x s matrix C row-major into out (s*s scalars), computed in double.
template <class T>
void dct2_matrix(int s, std::span<T> out);

}  // namespace expt::kernels
