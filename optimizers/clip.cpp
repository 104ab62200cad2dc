#include "optimizers/clip.hpp"

#include <cmath>

#include "kernels/reduction.hpp"

namespace expt::optim {

double squared_norm(std::span<const float> grads) {
  return kernels::sum_squares_fixed_order<double>(grads.data(), grads.size());
}

double clip_grad_norm(std::span<const std::span<float>> buffers, double max_norm) {
  double sum = 0.0;
  for (auto buffer : buffers) sum += squared_norm(buffer);
  const double norm = std::sqrt(sum);
  if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / norm);
    for (auto buffer : buffers)
      for (float& g : buffer) g *= scale;
  }
  return norm;
}

double clip_grad_norm(std::span<float> grads, double max_norm) {
  return clip_grad_norm(std::span<const std::span<float>>(&grads, 1), max_norm);
}

}  // namespace expt::optim
