// Task: what a trial learns. A task turns (seed, step, shard) into a batch with a pure function
// (counter-based randomness, Random123 Philox), so any step's batch can be rebuilt on any rank, in
// any order, after any resume, without carrying generator state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"

namespace expt::data {

inline constexpr std::int32_t kIgnoreIndex = -1;  // target value with no loss and no accuracy

// B sequences of length T, row-major [B, T]. targets[i] == kIgnoreIndex means "no label here".
struct Batch {
  int batch = 0;
  int length = 0;
  std::vector<std::int32_t> inputs;
  std::vector<std::int32_t> targets;
  void resize(int b, int t) {
    batch = b;
    length = t;
    inputs.assign(static_cast<std::size_t>(b) * t, 0);
    targets.assign(static_cast<std::size_t>(b) * t, kIgnoreIndex);
  }
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  virtual int vocab_size() const = 0;
  virtual int train_length() const = 0;
  // Lengths evaluated at each eval point (length extrapolation); the first is the training length.
  virtual std::vector<int> eval_lengths() const = 0;

  // Sequences [first, first + count) of the global training batch of `step`. Sequence i of a step
  // depends only on (seed, step, i): the union over shards is the same whatever the shard count.
  virtual void train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const = 0;
  // Eval batch `index` at `length`, drawn from a stream disjoint from training.
  virtual void eval_batch(std::uint64_t seed, int length, int index, int count, Batch& out) const = 0;
};

// Builds the task named by cfg.type; throws std::invalid_argument for an unknown type.
std::unique_ptr<Task> make_task(const config::TaskConfig& cfg);

}  // namespace expt::data
