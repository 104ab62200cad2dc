// ParameterStore: every trainable tensor of a model lives in one flat value buffer and one flat
// gradient buffer, in registration order. Each parameter has a dotted name
// ("blocks.0.mixer.q_proj.weight"), a shape (2-D weights are out x in, row-major, as PyTorch's
// nn.Linear stores them) and a role that optimizer routing uses.
//
// Life cycle: modules call add() in their constructors; allocate() is called once after the whole
// model is built; from then on value()/grad() return stable pointers. Gradient buckets,
// checkpoints and optimizers all walk params() in this fixed order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/aligned_vector.hpp"
#include "kernels/gemm.hpp"

namespace expt::nn {

// How an optimizer should treat a parameter (docs/optimizers.md "Routing").
enum class ParamRole { matrix, embedding, head, vector };

std::string_view to_string(ParamRole role);
ParamRole param_role_from_string(std::string_view name);  // throws std::invalid_argument

struct ParamInfo {
  std::string name;
  std::vector<std::int64_t> shape;  // 2-D weights: {out, in}
  ParamRole role;
  std::size_t offset = 0;  // into the flat buffers
  std::size_t size = 0;    // product of shape
  std::int64_t rows() const { return shape.empty() ? 1 : shape.front(); }
  std::int64_t cols() const { return shape.size() < 2 ? 1 : static_cast<std::int64_t>(size) / shape.front(); }
};

template <class T>
class ParameterStore {
 public:
  // Registers a parameter; returns its id (index into params()). Only before allocate().
  std::size_t add(std::string name, std::vector<std::int64_t> shape, ParamRole role);
  // Allocates both flat buffers (values zero, gradients zero). Called exactly once.
  void allocate();
  bool allocated() const { return allocated_; }

  const std::vector<ParamInfo>& params() const { return params_; }
  std::size_t size() const { return total_; }     // total number of scalars
  std::size_t find(std::string_view name) const;  // throws std::out_of_range

  T* value(std::size_t id) { return values_.data() + params_[id].offset; }
  const T* value(std::size_t id) const { return values_.data() + params_[id].offset; }
  T* grad(std::size_t id) { return grads_.data() + params_[id].offset; }
  const T* grad(std::size_t id) const { return grads_.data() + params_[id].offset; }

  std::span<T> values() { return values_; }
  std::span<const T> values() const { return values_; }
  std::span<T> grads() { return grads_; }
  std::span<const T> grads() const { return grads_; }

  void zero_grad();

  // Operand precision of the products that read these parameters as weights (Linear:
  // projections, MLP, LM head; train.precision, docs/decisions.md 123). Values, gradients and
  // everything else stay T. fp32 by default.
  kernels::Precision product_precision() const { return product_precision_; }
  void set_product_precision(kernels::Precision p) { product_precision_ = p; }

 private:
  std::vector<ParamInfo> params_;
  util::AlignedVector<T> values_;
  util::AlignedVector<T> grads_;
  std::size_t total_ = 0;
  bool allocated_ = false;
  kernels::Precision product_precision_ = kernels::Precision::fp32;
};

extern template class ParameterStore<float>;
extern template class ParameterStore<double>;

}  // namespace expt::nn
