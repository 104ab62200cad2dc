#pragma once
// Fixed-order reductions in 16 lanes, shared by every kernel and module that sums floats in a loop
// the compiler should vectorise. Term i of a sum always goes to lane i mod kSumLanes, and the lanes
// are combined in one of two fixed orders (LaneOrder), so the result depends only on the data and
// the length, never on alignment, vector width or loop peeling (a plain `for` reduction in float is
// not vectorised at all without -ffast-math, which would make the order compiler-dependent).
//
// The two orders give different last bits. Each call site names the order its results were
// produced with, and keeps it: changing a site's order would change its results (bit-exact tests
// and stored losses), which only a deliberate, recorded decision may do (docs/decisions.md 58, 63).
//
// Lanes<T> is the lane group as one GCC vector value (vector_size: a value in registers, whatever
// the target's width; plain lane-wise operations, so a lane's result is the same on every target
// and at every address), for kernels that keep running sums or products of a whole lane group in
// registers.
#include <cstddef>
#include <cstring>

namespace expt::kernels {

inline constexpr std::size_t kSumLanes = 16;

enum class LaneOrder {
  // Every term into its lane, the tail too (lanes 0 .. n mod 16 - 1), then the lanes pairwise as a
  // tree: lane l += lane l + 8, then + 4, + 2, + 1. The norms, cross-entropy, the gradient norm,
  // Newton-Schulz's Frobenius norm, the GLA kernel's boundary term (decision 58).
  tree,
  // Whole blocks of 16 terms into the lanes, the lanes added 0 .. 15 in order into one sum starting
  // at 0, then the tail terms in order. The delta-rule chunk kernel (decision 63).
  in_order_then_tail,
};

template <class T>
struct LaneVector {
  typedef T type __attribute__((vector_size(kSumLanes * sizeof(T))));
};
template <class T>
using Lanes = typename LaneVector<T>::type;

// Lane group i .. i + 15 of p, and back (memcpy: no alignment assumed).
template <class T>
inline void load_lanes(const T* p, Lanes<T>& x) {
  std::memcpy(&x, p, sizeof x);
}
template <class T>
inline void store_lanes(T* p, const Lanes<T>& x) {
  std::memcpy(p, &x, sizeof x);
}

// The lanes combined into one value: `tree` folds acc in place (acc[0] holds the result);
// `in_order_then_tail` leaves acc untouched. Acc is an array of kSumLanes values or a Lanes<T>.
template <LaneOrder order, class Acc, class Lanes_>
Acc fold_lanes(Lanes_& acc) {
  if constexpr (order == LaneOrder::tree) {
    for (std::size_t width = kSumLanes / 2; width > 0; width /= 2)
      for (std::size_t l = 0; l < width; ++l) acc[l] += acc[l + width];
    return acc[0];
  } else {
    Acc sum = 0;
    for (std::size_t l = 0; l < kSumLanes; ++l) sum += acc[l];
    return sum;
  }
}

// sum over i < n of term(i) (term returning Acc, the accumulation type: double where the callers
// accumulate in double), in the given order.
template <LaneOrder order, class Acc, class Term>
Acc lane_sum(std::size_t n, Term term) {
  Acc acc[kSumLanes] = {};
  std::size_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes)
    for (std::size_t l = 0; l < kSumLanes; ++l) acc[l] += term(i + l);
  if constexpr (order == LaneOrder::tree) {
    for (std::size_t l = 0; i + l < n; ++l) acc[l] += term(i + l);
    return fold_lanes<order, Acc>(acc);
  } else {
    Acc sum = fold_lanes<order, Acc>(acc);
    for (; i < n; ++i) sum += term(i);
    return sum;
  }
}

template <LaneOrder order, class Acc, class T>
Acc lane_dot(const T* a, const T* b, std::size_t n) {
  return lane_sum<order, Acc>(n, [a, b](std::size_t i) { return static_cast<Acc>(a[i]) * static_cast<Acc>(b[i]); });
}

// The tree order under the names the modules use.
template <class Acc, class Term>
Acc sum_fixed_order(std::size_t n, Term term) {
  return lane_sum<LaneOrder::tree, Acc>(n, term);
}

template <class Acc, class T>
Acc dot_fixed_order(const T* a, const T* b, std::size_t n) {
  return lane_dot<LaneOrder::tree, Acc>(a, b, n);
}

template <class Acc, class T>
Acc sum_squares_fixed_order(const T* a, std::size_t n) {
  return dot_fixed_order<Acc>(a, a, n);
}

}  // namespace expt::kernels
