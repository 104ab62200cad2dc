// Per-head output normalisation of the linear-attention mixers (fla `RMSNorm` / `FusedRMSNormGated`,
// docs/derivations/norms.md): for every row and head h, with o_h in R^{d_v} the head's output,
//   n   = o_h * rstd,   rstd = 1 / sqrt(mean(o_h^2) + eps)
//   y_h = n (.) w                      (no gate)
//   y_h = n (.) w (.) SiLU(z_h)        (gated: z = x W_g, the output gate)
// One weight w of size d_v (role `vector`, initialised to 1) is shared by all heads.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/nn/parameter_store.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class HeadRMSNorm {
 public:
  // Registers `name` with shape {head_dim}.
  HeadRMSNorm(ParameterStore<T>& store, const std::string& name, int heads, int head_dim, double eps);

  // o, y [rows, heads*head_dim]; gate [rows, heads*head_dim] or nullptr (no gate). Caches rstd.
  void forward(const T* o, const T* gate, T* y, int rows);
  // From dy: dw += sum over rows and heads of dy (.) n (.) s (s = SiLU(z), or 1);
  //   do = rstd (q - n mean(q (.) n)) with q = dy (.) w (.) s           (overwritten)
  //   dz = dy (.) n (.) w (.) SiLU'(z), SiLU'(z) = sig(z) (1 + z (1 - sig(z)))   (overwritten, gated only)
  // o and gate as in the last forward.
  void backward(const T* o, const T* gate, const T* dy, T* d_o, T* dgate, int rows);

  std::size_t weight_id() const { return weight_id_; }

 private:
  ParameterStore<T>* store_;
  std::size_t weight_id_;
  int heads_;
  int head_dim_;
  double eps_;
  util::AlignedVector<T> rstd_;  // [rows, heads] of the last forward
};

extern template class HeadRMSNorm<float>;
extern template class HeadRMSNorm<double>;

}  // namespace expt::nn
