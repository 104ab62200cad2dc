#include "core/nn/linear.hpp"

#include <stdexcept>

#include "kernels/gemm.hpp"

namespace expt::nn {

using kernels::gemm;
using kernels::Trans;

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
  // y [rows, out] = x [rows, in] * W^T [in, out]
  gemm(Trans::no, Trans::yes, rows, out_, in_, T(1), x, in_, store_->value(weight_id_), in_, T(0), y, out_);
}

template <class T>
void Linear<T>::backward(const T* x, const T* dy, T* dx, int rows, bool accumulate_dx) {
  // dW [out, in] += dy^T [out, rows] * x [rows, in]
  gemm(Trans::yes, Trans::no, out_, in_, rows, T(1), dy, out_, x, in_, T(1), store_->grad(weight_id_), in_);
  // dx [rows, in] (+)= dy [rows, out] * W [out, in]
  gemm(Trans::no, Trans::no, rows, in_, out_, T(1), dy, out_, store_->value(weight_id_), in_,
       accumulate_dx ? T(1) : T(0), dx, in_);
}

template class Linear<float>;
template class Linear<double>;

}  // namespace expt::nn
