// Token embedding: weight E [vocab, dim] row-major (role `embedding`), y[i] = E[token_i].
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/nn/parameter_store.hpp"

namespace expt::nn {

template <class T>
class Embedding {
 public:
  Embedding(ParameterStore<T>& store, const std::string& name, int vocab_size, int dim);

  // tokens [rows] in [0, vocab) -> y [rows, dim]. Throws std::out_of_range on a token outside.
  void forward(const std::int32_t* tokens, T* y, int rows) const;
  // dE[token_i] += dy[i] for every row (repeated tokens sum their gradients).
  void backward(const std::int32_t* tokens, const T* dy, int rows);

  std::size_t weight_id() const { return weight_id_; }
  int vocab_size() const { return vocab_; }
  int dim() const { return dim_; }

 private:
  ParameterStore<T>* store_;
  std::size_t weight_id_;
  int vocab_;
  int dim_;
};

extern template class Embedding<float>;
extern template class Embedding<double>;

}  // namespace expt::nn
