// Backward scratch shared by all layers of a model (llm.c's "one activation/gradient buffer").
//
// The blocks run their backward one after another, so the gradients at a layer's internal tensors
// (dq, dk, dv, the SwiGLU's dgate, dup, dhidden, the block's dh ...) are dead once that layer's
// backward returns: block l reuses the memory block l+1 used. Buffers are handed out as a stack:
//
//   Workspace<T>::Frame frame(ws);   // remembers the top of the stack
//   T* dq = ws.take(n);              // n elements, contents unspecified, until the frame ends
//   ...                              // a callee may take more; its buffers die with our frame
//                                    // ~Frame: everything taken since the frame began is released
//
// Sizing: one arena, grown to the largest stack depth ever reached. A take() that does not fit
// the arena gets a separate heap buffer (freed when its frame ends); the next take() on an empty
// stack reallocates the arena at the largest depth seen, so after one backward of every shape no
// take() allocates. Convention: a backward that takes buffers opens a Frame first, so it returns
// with the stack as it found it. Buffers start 64-byte aligned. No float result may depend on where a buffer is
// (the callers use OpenBLAS, which packs, and plain loops whose vector and scalar iterations compute
// the same operations), so reusing memory across layers does not change any result.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace expt::nn {

template <class T>
class Workspace {
 public:
  // Releases everything taken since its construction when destroyed (never allocates).
  class Frame {
   public:
    explicit Frame(Workspace& ws) : ws_(ws), mark_(ws.top_) {}
    ~Frame() { ws_.release(mark_); }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

   private:
    Workspace& ws_;
    std::size_t mark_;
  };

  // A buffer of n elements (n may be 0), 64-byte aligned, valid until the enclosing frame ends.
  T* take(std::size_t n);

  // Elements in the arena (the largest depth seen at the last empty stack).
  std::size_t capacity() const { return arena_size_; }
  // Largest stack depth reached so far, in elements (including the alignment padding).
  std::size_t high_water() const { return high_water_; }
  // Arena reallocations plus separate buffers handed out so far: constant once sized.
  std::size_t allocations() const { return allocations_; }

 private:
  struct AlignedFree {
    void operator()(T* p) const;
  };
  using Buffer = std::unique_ptr<T, AlignedFree>;
  static Buffer allocate(std::size_t n);
  void release(std::size_t mark);

  Buffer arena_;
  std::size_t arena_size_ = 0;
  std::size_t top_ = 0;  // stack depth in elements: the next take() starts here
  std::size_t high_water_ = 0;
  std::size_t allocations_ = 0;
  struct Overflow {
    std::size_t offset;  // stack depth at which it was taken
    Buffer buffer;
  };
  std::vector<Overflow> overflow_;  // buffers beyond the arena, in stack order
};

extern template class Workspace<float>;
extern template class Workspace<double>;

}  // namespace expt::nn
