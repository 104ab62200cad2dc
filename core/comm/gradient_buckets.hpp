// Data-parallel gradient reduction in buckets, overlapped with backward (docs/distributed.md, decision 28).
//
// The gradients of a model live in one flat buffer (nn::ParameterStore, registration order:
// embedding, block 0, ..., block n-1, final norm, head). Backward runs the layers in reverse, so the
// gradients become final from the END of the buffer towards its start: after the head and final
// norm, every offset >= offset(norm) is final; after block l, every offset >= offset(block l); after
// the embedding, everything. A bucket is a contiguous range [begin, end) of the buffer cut at such
// boundaries; the buckets are listed in the order backward completes them (highest offsets first).
// The layout depends on the model config only, so it is the same on every rank, and every rank
// starts the same reductions in the same order (a requirement of MPI collectives, and what keeps
// the reduction order fixed).
//
// BucketedAllreduce::ready(offset) is called by backward each time a boundary is passed; in the
// overlapped mode it starts a non-blocking sum (MPI_Iallreduce) of every bucket that became
// complete and lets MPI progress the ones in flight. finish() starts whatever is left and waits for
// all of them. The blocking mode is the plain reference: finish() sums the whole buffer with one
// blocking allreduce and ready() does nothing; tests hold the two equal.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "core/comm/communicator.hpp"

namespace expt::comm {

struct GradientBucket {
  std::size_t begin = 0;  // flat offsets into the gradient buffer, [begin, end)
  std::size_t end = 0;
  std::size_t size() const { return end - begin; }
};

// Cuts [0, total) into buckets at the given ready boundaries. `ready_offsets` lists, in backward
// order, the offset from which every gradient is final after each backward unit: strictly
// decreasing, the last one 0. Consecutive units are merged until a bucket holds at least
// `min_elements` (the last bucket, which ends at offset 0, may be smaller). Returns the buckets in
// backward order (the first bucket ends at `total`). Throws std::invalid_argument on offsets that
// are not strictly decreasing, exceed `total` or do not end at 0.
std::vector<GradientBucket> make_gradient_buckets(std::span<const std::size_t> ready_offsets, std::size_t total,
                                                  std::size_t min_elements);

enum class ReductionMode { overlapped, blocking };
ReductionMode reduction_mode_from_string(const std::string& name);  // "overlapped" | "blocking"
std::string to_string(ReductionMode mode);

// Time spent in the reduction, summed over steps (seconds of this rank's wall clock).
struct ReductionTimes {
  long steps = 0;
  double in_backward_s = 0;  // overlapped: inside ready() (starting buckets, MPI_Test progress)
  double exposed_s = 0;      // overlapped: waiting in finish(); blocking: the whole allreduce
};

class BucketedAllreduce {
 public:
  // `grads` is the flat gradient buffer (it must outlive this object); `buckets` in backward order.
  BucketedAllreduce(Communicator& comm, std::span<float> grads, std::vector<GradientBucket> buckets,
                    ReductionMode mode);

  // Start of a step's backward: no bucket is in flight.
  void begin();
  // Every gradient at flat offset >= `offset` is final. Overlapped: starts each bucket lying wholly
  // above `offset` that has not started yet (in bucket order) and progresses those in flight.
  void ready(std::size_t offset);
  // Completes the sum over ranks of the whole buffer (every bucket not yet started is started
  // first). After it returns, grads holds the sum on every rank.
  void finish();

  ReductionMode mode() const { return mode_; }
  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  const ReductionTimes& times() const { return times_; }

 private:
  Communicator& comm_;
  std::span<float> grads_;
  std::vector<GradientBucket> buckets_;
  ReductionMode mode_;
  void start_complete_buckets(std::size_t offset);  // starts buckets lying wholly at >= offset

  std::vector<Communicator::Pending> pending_;  // per bucket, valid for buckets [0, next_)
  std::size_t next_ = 0;                        // first bucket not started yet in this step
  ReductionTimes times_;
};

}  // namespace expt::comm
