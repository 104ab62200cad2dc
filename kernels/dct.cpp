#include "kernels/dct.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace expt::kernels {

template <class T>
void dct2_matrix(int s, std::span<T> out) {
  if (s < 1 || out.size() < static_cast<std::size_t>(s) * s) throw std::invalid_argument("dct2_matrix: bad size");
  const double scale = std::sqrt(2.0 / s);
  for (int i = 0; i < s; ++i) {
    const double c = i == 0 ? 1.0 / std::sqrt(2.0) : 1.0;
    for (int j = 0; j < s; ++j)
      out[static_cast<std::size_t>(i) * s + j] =
          static_cast<T>(c * scale * std::cos(std::numbers::pi * i * (2.0 * j + 1.0) / (2.0 * s)));
  }
}

template void dct2_matrix<float>(int, std::span<float>);
template void dct2_matrix<double>(int, std::span<double>);

}  // namespace expt::kernels
