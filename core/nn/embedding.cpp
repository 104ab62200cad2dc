#include "core/nn/embedding.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace expt::nn {

template <class T>
Embedding<T>::Embedding(ParameterStore<T>& store, const std::string& name, int vocab_size, int dim)
    : store_(&store),
      weight_id_(store.add(name, {vocab_size, dim}, ParamRole::embedding)),
      vocab_(vocab_size),
      dim_(dim) {}

template <class T>
void Embedding<T>::forward(const std::int32_t* tokens, T* y, int rows) const {
  const T* table = store_->value(weight_id_);
  for (int i = 0; i < rows; ++i) {
    const std::int32_t token = tokens[i];
    if (token < 0 || token >= vocab_)
      throw std::out_of_range("Embedding: token " + std::to_string(token) + " outside [0, " + std::to_string(vocab_) +
                              ")");
    const T* src = table + static_cast<std::size_t>(token) * dim_;
    std::copy(src, src + dim_, y + static_cast<std::size_t>(i) * dim_);
  }
}

template <class T>
void Embedding<T>::backward(const std::int32_t* tokens, const T* dy, int rows) {
  T* grad = store_->grad(weight_id_);
  for (int i = 0; i < rows; ++i) {
    T* dst = grad + static_cast<std::size_t>(tokens[i]) * dim_;
    const T* src = dy + static_cast<std::size_t>(i) * dim_;
    for (int c = 0; c < dim_; ++c) dst[c] += src[c];
  }
}

template class Embedding<float>;
template class Embedding<double>;

}  // namespace expt::nn
