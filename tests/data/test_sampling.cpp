// The shared draws of core/data/sampling.hpp against exact arithmetic: scale_to is the high word
// of a 128-bit product, and unit32 stays in [0, 1).
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <random>

#include "core/data/sampling.hpp"

namespace {

__extension__ typedef unsigned __int128 u128;  // GCC's 128-bit integer, as the exact reference

}  // namespace

TEST_CASE("scale_to is floor(r * n / 2^64)", "[sampling]") {
  std::mt19937_64 gen(12345);
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  for (int i = 0; i < 100000; ++i) {
    const std::uint64_t r = i < 4 ? (i % 2 ? max : 0) : gen();
    const std::uint64_t n = i % 3 == 0 ? gen() : (i % 3 == 1 ? gen() >> 32 : gen() % 1000 + 1);
    const auto exact = static_cast<std::uint64_t>((static_cast<u128>(r) * n) >> 64);
    REQUIRE(expt::data::scale_to(r, n) == exact);
    REQUIRE(expt::data::scale_to(r, n) < n);
  }
  CHECK(expt::data::scale_to(max, max) == max - 1);
  CHECK(expt::data::scale_to(std::uint64_t{1} << 63, 10) == 5);
}

TEST_CASE("bits64 and unit32 are pure functions of their coordinates", "[sampling]") {
  using expt::rng::Stream;
  CHECK(expt::data::bits64(1, Stream::train_data, 2, 3, 4) == expt::data::bits64(1, Stream::train_data, 2, 3, 4));
  CHECK(expt::data::bits64(1, Stream::train_data, 2, 3, 4) != expt::data::bits64(1, Stream::train_data, 2, 3, 5));
  CHECK(expt::data::bits64(1, Stream::train_data, 2, 3, 4) != expt::data::bits64(1, Stream::eval_data, 2, 3, 4));
  for (std::uint64_t i = 0; i < 1000; ++i) {
    const double u = expt::data::unit32(9, Stream::test, 0, 0, i);
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}
