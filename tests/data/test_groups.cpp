// Finite groups: element order against an enumeration written here, the table against composing
// permutation arrays, and the group axioms.
#include <catch2/catch.hpp>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/data/groups.hpp"
#include "core/util/random.hpp"

using expt::data::FiniteGroup;
using Perm = std::vector<int>;

namespace {

// Sign by cycle count: a permutation of n points with c cycles is a product of n - c transpositions.
bool even_by_cycles(const Perm& p) {
  const int n = static_cast<int>(p.size());
  std::vector<bool> seen(n, false);
  int cycles = 0;
  for (int i = 0; i < n; ++i) {
    if (seen[i]) continue;
    ++cycles;
    for (int j = i; !seen[j]; j = p[j]) seen[j] = true;
  }
  return (n - cycles) % 2 == 0;
}

// Every array in {0..n-1}^n in lexicographic order (an odometer), keeping the bijections.
std::vector<Perm> lexicographic_permutations(int n, bool even_only) {
  std::vector<Perm> out;
  Perm digits(n, 0);
  while (true) {
    std::vector<bool> used(n, false);
    bool bijective = true;
    for (int d : digits) {
      bijective = bijective && !used[d];
      used[d] = true;
    }
    if (bijective && (!even_only || even_by_cycles(digits))) out.push_back(digits);
    int k = n - 1;
    while (k >= 0 && digits[k] == n - 1) digits[k--] = 0;
    if (k < 0) break;
    ++digits[k];
  }
  return out;
}

// The test's own element list for a group name.
std::vector<Perm> expected_elements(const std::string& name) {
  const int n = std::stoi(name.substr(1));
  if (name[0] == 'S') return lexicographic_permutations(n, false);
  if (name[0] == 'A') return lexicographic_permutations(n, true);
  std::vector<Perm> rotations;
  for (int k = 0; k < n; ++k) {
    Perm p(n);
    for (int i = 0; i < n; ++i) p[i] = (i + k) % n;
    rotations.push_back(p);
  }
  return rotations;
}

// (a * b)(i) = b(a(i)).
Perm compose(const Perm& a, const Perm& b) {
  Perm c(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) c[i] = b[a[i]];
  return c;
}

}  // namespace

TEST_CASE("groups: orders, element order and the table match permutation composition", "[groups]") {
  const std::map<std::string, int> orders = {{"S3", 6}, {"S4", 24}, {"A5", 60}, {"S5", 120},
                                             {"Z2", 2}, {"Z5", 5},  {"Z7", 7}};
  for (const auto& [name, order] : orders) {
    INFO(name);
    const FiniteGroup group(name);
    CHECK(group.name() == name);
    REQUIRE(group.order() == order);
    const auto elements = expected_elements(name);
    REQUIRE(static_cast<int>(elements.size()) == order);
    std::map<Perm, int> index;
    for (int a = 0; a < order; ++a) {
      const auto p = group.permutation(a);
      REQUIRE(Perm(p.begin(), p.end()) == elements[a]);
      index[elements[a]] = a;
    }
    CHECK(group.identity() == 0);
    for (int i = 0; i < group.degree(); ++i) CHECK(elements[0][i] == i);
    for (int a = 0; a < order; ++a)
      for (int b = 0; b < order; ++b) {
        const auto it = index.find(compose(elements[a], elements[b]));
        REQUIRE(it != index.end());  // closure of the element list itself
        REQUIRE(group.multiply(a, b) == it->second);
      }
  }
}

TEST_CASE("groups: axioms of the table", "[groups]") {
  for (const std::string name : {"S3", "S4", "A5", "S5", "Z2", "Z5", "Z7"}) {
    INFO(name);
    const FiniteGroup group(name);
    const int n = group.order();
    const int e = group.identity();
    for (int a = 0; a < n; ++a) {
      CHECK(group.multiply(a, e) == a);
      CHECK(group.multiply(e, a) == a);
      const int inv = group.inverse(a);
      REQUIRE(inv >= 0);
      REQUIRE(inv < n);
      CHECK(group.multiply(a, inv) == e);
      CHECK(group.multiply(inv, a) == e);
      for (int b = 0; b < n; ++b) {
        const int c = group.multiply(a, b);
        REQUIRE(c >= 0);
        REQUIRE(c < n);
      }
    }
    auto associative = [&](int a, int b, int c) {
      return group.multiply(group.multiply(a, b), c) == group.multiply(a, group.multiply(b, c));
    };
    if (n <= 24) {
      for (int a = 0; a < n; ++a)
        for (int b = 0; b < n; ++b)
          for (int c = 0; c < n; ++c) REQUIRE(associative(a, b, c));
    } else {
      for (std::uint64_t k = 0; k < 20000; ++k) {
        using expt::rng::Stream;
        const auto u = static_cast<std::uint32_t>(n);
        REQUIRE(associative(static_cast<int>(expt::rng::uniform_int(1, Stream::test, k, 0, 0, u)),
                            static_cast<int>(expt::rng::uniform_int(1, Stream::test, k, 0, 1, u)),
                            static_cast<int>(expt::rng::uniform_int(1, Stream::test, k, 0, 2, u))));
      }
    }
  }
}

TEST_CASE("groups: A5 is the even permutations, S_n is not abelian, Z_n is", "[groups]") {
  const FiniteGroup a5("A5");
  for (int a = 0; a < a5.order(); ++a) {
    const auto p = a5.permutation(a);
    CHECK(even_by_cycles(Perm(p.begin(), p.end())));
  }
  const FiniteGroup s3("S3");
  bool commutes = true;
  for (int a = 0; a < 6; ++a)
    for (int b = 0; b < 6; ++b) commutes = commutes && s3.multiply(a, b) == s3.multiply(b, a);
  CHECK_FALSE(commutes);
  const FiniteGroup z7("Z7");
  for (int a = 0; a < 7; ++a)
    for (int b = 0; b < 7; ++b) CHECK(z7.multiply(a, b) == (a + b) % 7);
}

TEST_CASE("groups: other sizes and bad names", "[groups]") {
  CHECK(FiniteGroup("S2").order() == 2);
  CHECK(FiniteGroup("A4").order() == 12);
  CHECK(FiniteGroup("A6").order() == 360);
  CHECK(FiniteGroup("S6").order() == 720);
  CHECK(FiniteGroup("Z1024").order() == 1024);
  for (const char* bad : {"", "S", "S1", "S7", "A2", "Z1", "Z1025", "Z0", "D4", "S3x", "S03", "s3", "Z-3"})
    CHECK_THROWS_AS(FiniteGroup(bad), std::invalid_argument);
}
