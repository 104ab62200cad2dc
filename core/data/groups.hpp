// Finite groups for the word-problem task (docs/tasks.md), each realised as permutations of
// `degree()` points and given by a precomputed order x order multiplication table.
//
//   S<n>  (2 <= n <= 6)   all permutations of n points, indexed in lexicographic order of their
//                         image arrays (p[0], p[1], ..., p[n-1]); index 0 is the identity.
//   A<n>  (3 <= n <= 6)   the even permutations of n points, lexicographic among themselves
//                         (so the identity is again index 0).
//   Z<n>  (2 <= n <= 1024) cyclic, element k is the rotation i -> (i + k) mod n of n points;
//                         index k = k, multiplication is addition mod n.
// Sizes: |S3| = 6, |S4| = 24, |S5| = 120, |A5| = 60, |Z_n| = n.
//
// Multiplication convention: a permutation p is the array of images, p[i] = p(i), and
//   (a * b)(i) = b(a(i))     "first a, then b",
// so a word x_1 x_2 ... x_t acts left to right, as the prefix product y_t = y_{t-1} * x_t reads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace expt::data {

class FiniteGroup {
 public:
  // Throws std::invalid_argument for a name outside the list above.
  explicit FiniteGroup(std::string_view name);

  const std::string& name() const { return name_; }
  int order() const { return order_; }
  int identity() const { return 0; }
  int degree() const { return degree_; }  // number of points the permutations act on

  // Table lookup; a and b must be in [0, order).
  int multiply(int a, int b) const { return table_[static_cast<std::size_t>(a) * order_ + b]; }
  int inverse(int a) const { return inverse_[a]; }
  // The image array of element a (degree() entries).
  std::span<const int> permutation(int a) const {
    return {permutations_.data() + static_cast<std::size_t>(a) * degree_, static_cast<std::size_t>(degree_)};
  }

 private:
  std::string name_;
  int order_ = 0;
  int degree_ = 0;
  std::vector<int> permutations_;  // order x degree, row a = image array of element a
  std::vector<int> table_;         // order x order, table_[a*order + b] = a * b
  std::vector<int> inverse_;
};

}  // namespace expt::data
