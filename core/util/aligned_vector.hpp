// std::vector whose storage starts on a 64-byte boundary (one cache line, one AVX-512 vector).
//
// The layers' activations, the parameters and their gradients live in these. glibc's malloc
// returns large blocks 16 bytes past a page boundary, so in a plain std::vector every 64-byte
// load or store of a row straddles two cache lines, and a kernel that walks a column of rows (the
// short convolution) fetches every line twice. Aligned, DeltaProduct's training step at d_model
// 256 measured 3.7 % faster on a Zen 5 (docs/performance.md). Results never depend on where a buffer
// is (the kernels compute the same operations at any address; tested per kernel), only speed does.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace expt::util {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{64};

  CacheLineAllocator() noexcept = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), alignment)); }
  void deallocate(T* p, std::size_t n) noexcept { ::operator delete(p, n * sizeof(T), alignment); }

  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace expt::util
