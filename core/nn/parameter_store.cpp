#include "core/nn/parameter_store.hpp"

#include <algorithm>
#include <numeric>

#include "core/util/allocation.hpp"

namespace expt::nn {

std::string_view to_string(ParamRole role) {
  switch (role) {
    case ParamRole::matrix:
      return "matrix";
    case ParamRole::embedding:
      return "embedding";
    case ParamRole::head:
      return "head";
    case ParamRole::vector:
      return "vector";
  }
  return "?";
}

ParamRole param_role_from_string(std::string_view name) {
  if (name == "matrix") return ParamRole::matrix;
  if (name == "embedding") return ParamRole::embedding;
  if (name == "head") return ParamRole::head;
  if (name == "vector") return ParamRole::vector;
  throw std::invalid_argument("unknown parameter role '" + std::string(name) + "'");
}

template <class T>
std::size_t ParameterStore<T>::add(std::string name, std::vector<std::int64_t> shape, ParamRole role) {
  if (allocated_) throw std::logic_error("ParameterStore::add after allocate: " + name);
  for (const auto& p : params_)
    if (p.name == name) throw std::logic_error("duplicate parameter name: " + name);
  std::size_t n = 1;
  for (auto d : shape) {
    if (d <= 0) throw std::invalid_argument("parameter " + name + " has a non-positive dimension");
    n *= static_cast<std::size_t>(d);
  }
  params_.push_back(ParamInfo{std::move(name), std::move(shape), role, total_, n});
  total_ += n;
  return params_.size() - 1;
}

template <class T>
void ParameterStore<T>::allocate() {
  if (allocated_) throw std::logic_error("ParameterStore::allocate called twice");
  util::allocating(
      "parameters", [&] { return "the parameter values and gradients, 2 x " + std::to_string(total_) + " values"; },
      2.0 * sizeof(T) * static_cast<double>(total_),
      [&] {
        values_.assign(total_, T(0));
        grads_.assign(total_, T(0));
      });
  allocated_ = true;
}

template <class T>
std::size_t ParameterStore<T>::find(std::string_view name) const {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return i;
  throw std::out_of_range("no parameter named " + std::string(name));
}

template <class T>
void ParameterStore<T>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), T(0));
}

template class ParameterStore<float>;
template class ParameterStore<double>;

}  // namespace expt::nn
