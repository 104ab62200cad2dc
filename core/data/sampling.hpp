// Counter-based draws the tasks share, on top of core/util/random.hpp.
#pragma once

#include <cstdint>

#include "core/util/random.hpp"

namespace expt::data {

// floor(r * n / 2^64): the high 64 bits of the 128-bit product, computed from 32-bit halves. With
// r uniform over 64-bit words this is uniform over [0, n) up to a bias below n / 2^64.
inline std::uint64_t scale_to(std::uint64_t r, std::uint64_t n) {
  const std::uint64_t r_lo = r & 0xFFFFFFFFu, r_hi = r >> 32;
  const std::uint64_t n_lo = n & 0xFFFFFFFFu, n_hi = n >> 32;
  const std::uint64_t lo_lo = r_lo * n_lo, hi_lo = r_hi * n_lo, lo_hi = r_lo * n_hi, hi_hi = r_hi * n_hi;
  const std::uint64_t middle = (lo_lo >> 32) + (hi_lo & 0xFFFFFFFFu) + (lo_hi & 0xFFFFFFFFu);
  return hi_hi + (hi_lo >> 32) + (lo_hi >> 32) + (middle >> 32);
}

// A uniform 64-bit word from words 2*index and 2*index + 1 of (seed, stream, a, b).
inline std::uint64_t bits64(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b,
                            std::uint64_t index) {
  return (static_cast<std::uint64_t>(rng::bits(seed, stream, a, b, 2 * index)) << 32) |
         rng::bits(seed, stream, a, b, 2 * index + 1);
}

// Uniform in [0, 1) with 32 bits of resolution, from word `index`.
inline double unit32(std::uint64_t seed, rng::Stream stream, std::uint64_t a, std::uint64_t b, std::uint64_t index) {
  return static_cast<double>(rng::bits(seed, stream, a, b, index)) * (1.0 / 4294967296.0);
}

}  // namespace expt::data
