#include "core/nn/linear.hpp"

#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"

namespace expt::nn {

using kernels::Trans;

namespace {

// The layer's products: float ones at the store's product precision (fp32 or bf16 operands,
// fp32 accumulation), double ones (gradient checks) in double.
template <class T>
void product(const ParameterStore<T>& store, Trans ta, Trans tb, int M, int N, int K, const T* A, int lda, const T* B,
             int ldb, T beta, T* C, int ldc) {
  if constexpr (std::is_same_v<T, float>)
    kernels::gemm_in(store.product_precision(), ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
  else
    kernels::gemm(ta, tb, M, N, K, T(1), A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

template <class T>
Linear<T>::Linear(ParameterStore<T>& store, const std::string& name, int in_features, int out_features, ParamRole role)
    : store_(&store),
      weight_id_(store.add(name, {out_features, in_features}, role)),
      in_(in_features),
      out_(out_features) {}

template <class T>
Linear<T>::Linear(ParameterStore<T>& store, std::size_t weight_id, int in_features, int out_features)
    : store_(&store), weight_id_(weight_id), in_(in_features), out_(out_features) {
  const ParamInfo& info = store.params().at(weight_id);
  if (info.rows() != out_features || info.cols() != in_features)
    throw std::invalid_argument("Linear: parameter " + info.name + " does not have shape [out, in]");
}

template <class T>
void Linear<T>::forward(const T* x, T* y, int rows) const {
  if (reads_transposed_weight()) {
    // Per-thread, grow-only: one weight's copy at a time ([in, out], 0.7 MiB at 256 x 683).
    thread_local std::vector<T> weight_t;
    weight_t.resize(static_cast<std::size_t>(in_) * out_);
    transpose_weight(weight_t.data());
    forward_transposed(x, weight_t.data(), y, rows);
    return;
  }
  // y [rows, out] = x [rows, in] * W^T [in, out], W [out, in] read transposed
  product(*store_, Trans::no, Trans::yes, rows, out_, in_, x, in_, store_->value(weight_id_), in_, T(0), y, out_);
}

template <class T>
void Linear<T>::forward_transposed(const T* x, const T* weight_t, T* y, int rows) const {
  // y [rows, out] = x [rows, in] * weight_t [in, out]
  product(*store_, Trans::no, Trans::no, rows, out_, in_, x, in_, weight_t, out_, T(0), y, out_);
}

template <class T>
void Linear<T>::transpose_weight(T* weight_t) const {
  kernels::transpose(out_, in_, store_->value(weight_id_), in_, weight_t, out_);
}

template <class T>
bool Linear<T>::reads_transposed_weight() const {
  if constexpr (std::is_same_v<T, float>)
    return store_->product_precision() == kernels::Precision::fp32 &&
           static_cast<std::size_t>(in_) * out_ <= kMaxTransposedWeight && kernels::forward_reads_transposed_weight();
  else
    return false;
}

template <class T>
void Linear<T>::backward(const T* x, const T* dy, T* dx, int rows, bool accumulate_dx) {
  // dW [out, in] += dy^T [out, rows] * x [rows, in]
  product(*store_, Trans::yes, Trans::no, out_, in_, rows, dy, out_, x, in_, T(1), store_->grad(weight_id_), in_);
  // dx [rows, in] (+)= dy [rows, out] * W [out, in]
  product(*store_, Trans::no, Trans::no, rows, in_, out_, dy, out_, store_->value(weight_id_), in_,
          accumulate_dx ? T(1) : T(0), dx, in_);
}

template class Linear<float>;
template class Linear<double>;

}  // namespace expt::nn
