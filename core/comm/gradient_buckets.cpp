#include "core/comm/gradient_buckets.hpp"

#include <chrono>
#include <stdexcept>

namespace expt::comm {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::vector<GradientBucket> make_gradient_buckets(std::span<const std::size_t> ready_offsets, std::size_t total,
                                                  std::size_t min_elements) {
  if (ready_offsets.empty() || ready_offsets.back() != 0)
    throw std::invalid_argument("gradient buckets: the last ready offset must be 0");
  std::vector<GradientBucket> buckets;
  std::size_t end = total;  // the current bucket is [offset, end)
  std::size_t previous = total + 1;
  for (std::size_t offset : ready_offsets) {
    if (offset >= previous || offset > total)
      throw std::invalid_argument("gradient buckets: ready offsets must decrease strictly from at most the total");
    previous = offset;
    if (end - offset >= min_elements || offset == 0) {
      if (end > offset) buckets.push_back(GradientBucket{offset, end});
      end = offset;
    }
  }
  return buckets;
}

ReductionMode reduction_mode_from_string(const std::string& name) {
  if (name == "overlapped") return ReductionMode::overlapped;
  if (name == "blocking") return ReductionMode::blocking;
  throw std::invalid_argument("unknown gradient reduction mode '" + name + "' (expected overlapped or blocking)");
}

std::string to_string(ReductionMode mode) { return mode == ReductionMode::overlapped ? "overlapped" : "blocking"; }

BucketedAllreduce::BucketedAllreduce(Communicator& comm, std::span<float> grads, std::vector<GradientBucket> buckets,
                                     ReductionMode mode)
    : comm_(comm), grads_(grads), buckets_(std::move(buckets)), mode_(mode) {
  // The buckets must tile the buffer exactly, from its end down to 0.
  std::size_t end = grads_.size();
  for (const GradientBucket& b : buckets_) {
    if (b.end != end || b.begin >= b.end) throw std::invalid_argument("gradient buckets do not tile the buffer");
    end = b.begin;
  }
  if (end != 0) throw std::invalid_argument("gradient buckets do not reach offset 0");
  pending_.assign(buckets_.size(), -1);
}

void BucketedAllreduce::begin() { next_ = 0; }

void BucketedAllreduce::start_complete_buckets(std::size_t offset) {
  while (next_ < buckets_.size() && buckets_[next_].begin >= offset) {
    const GradientBucket& b = buckets_[next_];
    pending_[next_] = comm_.start_allreduce_sum(grads_.subspan(b.begin, b.size()));
    ++next_;
  }
}

void BucketedAllreduce::ready(std::size_t offset) {
  if (mode_ != ReductionMode::overlapped) return;
  const auto t0 = std::chrono::steady_clock::now();
  start_complete_buckets(offset);
  comm_.progress();
  times_.in_backward_s += seconds_since(t0);
}

void BucketedAllreduce::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  if (mode_ == ReductionMode::blocking) {
    comm_.allreduce_sum(grads_);
  } else {
    start_complete_buckets(0);  // a backward that reported no boundary, or the last bucket
    for (std::size_t i = 0; i < buckets_.size(); ++i) comm_.wait(pending_[i]);
  }
  times_.exposed_s += seconds_since(t0);
  ++times_.steps;
}

}  // namespace expt::comm
