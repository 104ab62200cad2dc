#include "core/nn/workspace.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "core/util/allocation.hpp"

namespace expt::nn {

namespace {
constexpr std::size_t kAlignBytes = 64;
}  // namespace

template <class T>
void Workspace<T>::AlignedFree::operator()(T* p) const {
  ::operator delete (p, std::align_val_t{kAlignBytes});
}

template <class T>
typename Workspace<T>::Buffer Workspace<T>::allocate(std::size_t n) {
  // Zero-filled: a fresh buffer holds defined values even for a caller that (wrongly) reads
  // before writing, as std::vector's did.
  const std::size_t bytes = std::max<std::size_t>(n, 1) * sizeof(T);
  T* p = util::allocating(
      "workspace", [&] { return "the backward workspace, " + std::to_string(n) + " values"; },
      static_cast<double>(bytes),
      [&] { return static_cast<T*>(::operator new (bytes, std::align_val_t{kAlignBytes})); });
  std::memset(static_cast<void*>(p), 0, bytes);
  return Buffer(p);
}

template <class T>
T* Workspace<T>::take(std::size_t n) {
  // Round up so that the next buffer stays 64-byte aligned.
  constexpr std::size_t per_line = kAlignBytes / sizeof(T);
  const std::size_t padded = (n + per_line - 1) / per_line * per_line;
  if (top_ == 0 && high_water_ > arena_size_) {
    // Nothing is live: regrow the arena to the deepest stack seen (free first, then allocate).
    arena_.reset();
    arena_ = allocate(high_water_);
    arena_size_ = high_water_;
    ++allocations_;
  }
  const std::size_t offset = top_;
  top_ += padded;
  high_water_ = std::max(high_water_, top_);
  if (top_ <= arena_size_) return arena_.get() + offset;
  ++allocations_;
  overflow_.push_back({offset, allocate(padded)});
  return overflow_.back().buffer.get();
}

template <class T>
void Workspace<T>::release(std::size_t mark) {
  while (!overflow_.empty() && overflow_.back().offset >= mark) overflow_.pop_back();
  top_ = mark;
}

template class Workspace<float>;
template class Workspace<double>;

}  // namespace expt::nn
