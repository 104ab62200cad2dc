#include "core/nn/short_convolution.hpp"

#include "core/util/random.hpp"
#include "kernels/short_conv.hpp"

namespace expt::nn {

template <class T>
ShortConvolution<T>::ShortConvolution(ParameterStore<T>& store, const std::string& name, int channels, int width)
    : store_(&store),
      weight_id_(store.add(name, {channels, width}, ParamRole::vector)),
      channels_(channels),
      width_(width) {}

template <class T>
void ShortConvolution<T>::init_parameters(std::uint64_t seed, double init_std) {
  T* w = store_->value(weight_id_);
  const std::size_t n = store_->params()[weight_id_].size;
  for (std::size_t e = 0; e < n; ++e)
    w[e] = static_cast<T>(init_std * rng::normal(seed, rng::Stream::init, weight_id_, 0, e));
}

template <class T>
void ShortConvolution<T>::forward(const T* pre, T* act, int batch, int seq_len) const {
  const kernels::ShortConvShape shape{batch, seq_len, channels_, width_};
  kernels::short_conv_forward(shape, pre, store_->value(weight_id_), act);
}

template <class T>
void ShortConvolution<T>::backward(const T* pre, const T* dact, T* dpre, int batch, int seq_len) {
  const kernels::ShortConvShape shape{batch, seq_len, channels_, width_};
  // The kernel overwrites the weight gradient: compute it in scratch, then accumulate.
  const std::size_t n_weight = store_->params()[weight_id_].size;
  dweight_.resize(n_weight);
  kernels::short_conv_backward(shape, pre, store_->value(weight_id_), dact, dpre, dweight_.data());
  T* dw = store_->grad(weight_id_);
  for (std::size_t e = 0; e < n_weight; ++e) dw[e] += dweight_[e];
}

template class ShortConvolution<float>;
template class ShortConvolution<double>;

}  // namespace expt::nn
