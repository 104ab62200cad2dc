// Counter-based randomness (Random123 Philox4x32-10). A random value is a pure function of
// (seed, stream, a, b, index): no generator state is carried, so any rank, any resume and any
// order of evaluation reproduce the same numbers.
//   seed   the trial seed (64 bit, the key)
//   stream what the numbers are for (Stream below), so uses never overlap
//   a, b   two 32..64-bit coordinates chosen by the user (e.g. step and sequence index)
//   index  position inside that coordinate (e.g. token index); 4 words are produced per counter
#pragma once

#include <Random123/philox.h>

#include <cmath>
#include <cstdint>

namespace expt::rng {

enum class Stream : std::uint32_t { init = 1, train_data = 2, eval_data = 3, dropout = 4, test = 5 };

// The 32-bit word number `index` of the sequence addressed by (seed, stream, a, b).
inline std::uint32_t bits(std::uint64_t seed, Stream stream, std::uint64_t a, std::uint64_t b, std::uint64_t index) {
  r123::Philox4x32 gen;
  r123::Philox4x32::key_type key = {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  // Counter words: (stream<<24 | a's high bits, a, b, index/4); a is limited to 2^40, b to 2^32.
  r123::Philox4x32::ctr_type ctr = {{static_cast<std::uint32_t>(index >> 2),
                                     static_cast<std::uint32_t>(b),
                                     static_cast<std::uint32_t>(a),
                                     (static_cast<std::uint32_t>(stream) << 24) |
                                         static_cast<std::uint32_t>((a >> 32) & 0xFFFFFFu)}};
  return gen(ctr, key)[index & 3u];
}

// Uniform in [0, 1) with 24 bits of resolution (exact in float).
inline double uniform(std::uint64_t seed, Stream s, std::uint64_t a, std::uint64_t b, std::uint64_t index) {
  return static_cast<double>(bits(seed, s, a, b, index) >> 8) * (1.0 / 16777216.0);
}

// Uniform integer in [0, n) for n <= 2^32, by rejection-free 64-bit multiply (bias < 2^-32 * n).
inline std::uint32_t uniform_int(std::uint64_t seed, Stream s, std::uint64_t a, std::uint64_t b, std::uint64_t index,
                                 std::uint32_t n) {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(bits(seed, s, a, b, index)) * n) >> 32);
}

// Standard normal by Box-Muller on words 2*index and 2*index+1.
inline double normal(std::uint64_t seed, Stream s, std::uint64_t a, std::uint64_t b, std::uint64_t index) {
  constexpr double two_pi = 6.283185307179586476925286766559;
  const double u1 = (static_cast<double>(bits(seed, s, a, b, 2 * index)) + 1.0) * (1.0 / 4294967296.0);  // (0,1]
  const double u2 = static_cast<double>(bits(seed, s, a, b, 2 * index + 1)) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2);
}

}  // namespace expt::rng
