#pragma once
// Sums in a fixed order that the compiler can vectorise: lane l of kLanes partial sums always
// holds the terms i = l (mod kLanes), and the lanes are added in a fixed tree at the end. The
// result depends only on the data and n, never on alignment, vector width or loop peeling (a
// plain `for` reduction in float is not vectorised at all without -ffast-math, which would make
// the order compiler-dependent). Acc is the accumulation type (double where the callers
// accumulated in double before).
#include <cstddef>

namespace expt::kernels {

// sum over i < n of term(i), term returning Acc.
template <class Acc, class Term>
Acc sum_fixed_order(std::size_t n, Term term) {
  constexpr std::size_t kLanes = 16;
  Acc acc[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) acc[l] += term(i + l);
  for (std::size_t l = 0; i + l < n; ++l) acc[l] += term(i + l);
  for (std::size_t width = kLanes / 2; width > 0; width /= 2)
    for (std::size_t l = 0; l < width; ++l) acc[l] += acc[l + width];
  return acc[0];
}

template <class Acc, class T>
Acc dot_fixed_order(const T* a, const T* b, std::size_t n) {
  return sum_fixed_order<Acc>(n, [a, b](std::size_t i) { return static_cast<Acc>(a[i]) * static_cast<Acc>(b[i]); });
}

template <class Acc, class T>
Acc sum_squares_fixed_order(const T* a, std::size_t n) {
  return dot_fixed_order<Acc>(a, a, n);
}

}  // namespace expt::kernels
