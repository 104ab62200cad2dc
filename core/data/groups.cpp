#include "core/data/groups.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>
#include <stdexcept>

namespace expt::data {

namespace {

// Parity of a permutation by counting inversions (n <= 6 here, so O(n²) is nothing).
bool is_even(const std::vector<int>& p) {
  int inversions = 0;
  for (std::size_t i = 0; i < p.size(); ++i)
    for (std::size_t j = i + 1; j < p.size(); ++j) inversions += p[i] > p[j] ? 1 : 0;
  return inversions % 2 == 0;
}

// Base-n code of an image array; distinct arrays get distinct codes below n^n.
int permutation_code(std::span<const int> p) {
  int code = 0;
  for (int x : p) code = code * static_cast<int>(p.size()) + x;
  return code;
}

int parse_degree(std::string_view name) {
  int n = 0;
  const char* first = name.data() + 1;
  const char* last = name.data() + name.size();
  const auto [end, error] = std::from_chars(first, last, n);
  if (name.size() < 2 || name[1] == '0' || error != std::errc() || end != last)
    throw std::invalid_argument("unknown group '" + std::string(name) + "' (known: S<n>, A<n>, Z<n>)");
  return n;
}

}  // namespace

FiniteGroup::FiniteGroup(std::string_view name) : name_(name) {
  const char kind = name.empty() ? '\0' : name.front();
  if (kind != 'S' && kind != 'A' && kind != 'Z')
    throw std::invalid_argument("unknown group '" + std::string(name) + "' (known: S<n>, A<n>, Z<n>)");
  const int n = parse_degree(name);
  degree_ = n;

  if (kind == 'Z') {
    if (n < 2 || n > 1024) throw std::invalid_argument("group " + name_ + ": Z<n> needs 2 <= n <= 1024");
    order_ = n;
    permutations_.resize(static_cast<std::size_t>(n) * n);
    for (int k = 0; k < n; ++k)
      for (int i = 0; i < n; ++i) permutations_[static_cast<std::size_t>(k) * n + i] = (i + k) % n;
    // Rotation by a then by b is rotation by a + b.
    table_.resize(static_cast<std::size_t>(n) * n);
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b) table_[static_cast<std::size_t>(a) * n + b] = (a + b) % n;
  } else {
    if (kind == 'S' && (n < 2 || n > 6)) throw std::invalid_argument("group " + name_ + ": S<n> needs 2 <= n <= 6");
    if (kind == 'A' && (n < 3 || n > 6)) throw std::invalid_argument("group " + name_ + ": A<n> needs 3 <= n <= 6");
    // next_permutation from the identity walks the arrays in lexicographic order.
    std::vector<int> p(n);
    std::iota(p.begin(), p.end(), 0);
    do {
      if (kind == 'S' || is_even(p)) permutations_.insert(permutations_.end(), p.begin(), p.end());
    } while (std::next_permutation(p.begin(), p.end()));
    order_ = static_cast<int>(permutations_.size() / n);

    int code_count = 1;
    for (int i = 0; i < n; ++i) code_count *= n;
    std::vector<int> index_of_code(code_count, -1);
    for (int a = 0; a < order_; ++a) index_of_code[permutation_code(permutation(a))] = a;

    // (a * b)(i) = b(a(i)).
    table_.resize(static_cast<std::size_t>(order_) * order_);
    std::vector<int> product(n);
    for (int a = 0; a < order_; ++a) {
      const auto pa = permutation(a);
      for (int b = 0; b < order_; ++b) {
        const auto pb = permutation(b);
        for (int i = 0; i < n; ++i) product[i] = pb[pa[i]];
        const int c = index_of_code[permutation_code(product)];
        if (c < 0) throw std::logic_error("group " + name_ + " is not closed under composition");
        table_[static_cast<std::size_t>(a) * order_ + b] = c;
      }
    }
  }

  inverse_.assign(order_, -1);
  for (int a = 0; a < order_; ++a)
    for (int b = 0; b < order_; ++b)
      if (multiply(a, b) == identity()) inverse_[a] = b;
}

}  // namespace expt::data
