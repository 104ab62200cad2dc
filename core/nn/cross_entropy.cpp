#include "core/nn/cross_entropy.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "kernels/elementwise_math.hpp"
#include "kernels/reduction.hpp"

namespace expt::nn {

template <class T>
CrossEntropyStats cross_entropy(const T* logits, const std::int32_t* targets, int N, int V, int ignore_index,
                                T* dlogits, T grad_scale, std::uint8_t* correct) {
  CrossEntropyStats stats;
  for (int i = 0; i < N; ++i) {
    const T* row = logits + static_cast<std::size_t>(i) * V;
    T* drow = dlogits ? dlogits + static_cast<std::size_t>(i) * V : nullptr;
    const std::int32_t target = targets[i];
    if (target == ignore_index) {
      if (drow) std::fill(drow, drow + V, T(0));
      if (correct) correct[i] = 1;
      continue;
    }
    if (target < 0 || target >= V)
      throw std::out_of_range("cross_entropy: target " + std::to_string(target) + " outside [0, " + std::to_string(V) +
                              ")");
    // lse = m + log sum_j exp(l_j - m), m = max_j l_j; loss = lse - l_target. The exponentials in T
    // (kernels/elementwise_math: vectorised for float), their sum in double in a fixed order.
    const int argmax = static_cast<int>(std::max_element(row, row + V) - row);
    const T row_max = row[argmax];
    const std::size_t n = static_cast<std::size_t>(V);
    double sum = 0;
    if (drow) {
      for (int j = 0; j < V; ++j) drow[j] = kernels::math::exp(row[j] - row_max);
      sum = kernels::sum_fixed_order<double>(n, [drow](std::size_t j) { return static_cast<double>(drow[j]); });
    } else {
      sum = kernels::sum_fixed_order<double>(
          n, [row, row_max](std::size_t j) { return static_cast<double>(kernels::math::exp(row[j] - row_max)); });
    }
    const double lse = static_cast<double>(row_max) + std::log(sum);
    stats.loss_sum += lse - static_cast<double>(row[target]);
    stats.count += 1;
    stats.correct += argmax == target ? 1 : 0;
    if (correct) correct[i] = argmax == target ? 1 : 0;
    if (drow) {
      // d loss / d l_j = softmax_j - [j == target], softmax_j = exp(l_j - m) / sum
      const T scale = static_cast<T>(static_cast<double>(grad_scale) / sum);
      for (int j = 0; j < V; ++j) drow[j] *= scale;
      drow[target] -= grad_scale;
    }
  }
  return stats;
}

template CrossEntropyStats cross_entropy<float>(const float*, const std::int32_t*, int, int, int, float*, float,
                                                std::uint8_t*);
template CrossEntropyStats cross_entropy<double>(const double*, const std::int32_t*, int, int, int, double*, double,
                                                 std::uint8_t*);

}  // namespace expt::nn
