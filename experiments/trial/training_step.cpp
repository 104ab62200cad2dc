#include "experiments/trial/training_step.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "core/nn/cross_entropy.hpp"
#include "kernels/processor.hpp"
#include "optimizers/clip.hpp"
#include "optimizers/schedule.hpp"

namespace expt::experiments {

namespace {

// Buckets of at least this many floats (256 KiB): smaller layers are merged with their neighbours
// so that a tiny layer does not cost a collective's latency on its own.
constexpr std::size_t kMinBucketElements = std::size_t{1} << 16;

comm::ReductionMode reduction_mode(const StepOptions& opt) {
  if (opt.reduction) return *opt.reduction;
  const char* env = std::getenv("EXPT_GRAD_REDUCTION");
  if (env == nullptr || *env == '\0') return comm::ReductionMode::overlapped;
  return comm::reduction_mode_from_string(env);
}

void enter(StepWatcher* watcher, StepPhase phase) {
  if (watcher != nullptr) watcher->enter(phase);
}

}  // namespace

const char* to_string(StepPhase phase) {
  switch (phase) {
    case StepPhase::data:
      return "data";
    case StepPhase::forward:
      return "forward";
    case StepPhase::backward:
      return "backward";
    case StepPhase::reduce:
      return "reduce";
    case StepPhase::optimizer:
      return "optimizer";
  }
  return "?";
}

// A perfect binary tree in push order (for a power-of-two count): leaves g0..g3 give
// (g0 + g1) + (g2 + g3). A stack of partial sums, one per tree level, so memory is O(log count)
// vectors. The deterministic mode relies on this order being the same whatever the rank count.
void TrainingStep::TreeSum::push(std::span<const float> g) {
  if (depth_ == sums_.size()) {
    sums_.emplace_back();
    leaves_.push_back(0);
  }
  sums_[depth_].assign(g.begin(), g.end());
  leaves_[depth_] = 1;
  ++depth_;
  // Merge the two top subtrees while they are of equal size: left += right.
  while (depth_ >= 2 && leaves_[depth_ - 1] == leaves_[depth_ - 2]) {
    std::vector<float>& left = sums_[depth_ - 2];
    const std::vector<float>& right = sums_[depth_ - 1];
    for (std::size_t i = 0; i < left.size(); ++i) left[i] += right[i];
    leaves_[depth_ - 2] *= 2;
    --depth_;
  }
}

// The sum once a power-of-two number of vectors has been pushed.
std::span<const float> TrainingStep::TreeSum::root() const {
  if (depth_ != 1) throw std::logic_error("TreeSum::root: the pushed count is not a power of two");
  return sums_[0];
}

TrainingStep::TrainingStep(const config::TrialConfig& cfg, comm::Communicator& comm, const StepOptions& options)
    : cfg_(cfg),
      comm_(comm),
      options_(options),
      task_(data::make_task(cfg.task)),
      vocab_(cfg.model.vocab_size > 0 ? cfg.model.vocab_size : task_->vocab_size()),
      model_(cfg.model, vocab_, store_) {
  if (cfg.train.batch_size % comm.size() != 0)
    throw std::runtime_error(fmt::format("train.batch_size {} is not divisible by the {} ranks of the trial",
                                         cfg.train.batch_size, comm.size()));
  local_batch_ = cfg.train.batch_size / comm.size();
  micro_shards_ = config::deterministic_micro_shards(cfg.train.batch_size);
  if (cfg.train.deterministic && micro_shards_ % comm.size() != 0)
    throw std::runtime_error(
        fmt::format("train.deterministic cuts train.batch_size {} into {} micro-shard(s), which {} ranks cannot share",
                    cfg.train.batch_size, micro_shards_, comm.size()));
  store_.set_product_precision(kernels::parse_precision(cfg.train.precision));
  if (store_.product_precision() == kernels::Precision::bf16) kernels::require_bf16_support();
  store_.allocate();
  model_.init_parameters(cfg.seed);
  optimizer_ = optim::make_optimizer(cfg.optimizer, store_.params());
  optimizer_->set_communicator(&comm_);
  refs_ = optim::param_refs(store_);
  if (comm.size() > 1 && !cfg.train.deterministic) {
    // Buckets cut where backward finishes a layer, in backward order (highest offsets first).
    std::vector<std::size_t> ready_offsets;
    for (std::size_t id : model_.ready_ids()) ready_offsets.push_back(store_.params()[id].offset);
    reducer_ = std::make_unique<comm::BucketedAllreduce>(
        comm, store_.grads(), comm::make_gradient_buckets(ready_offsets, store_.size(), kMinBucketElements),
        reduction_mode(options));
  }
}

std::int64_t TrainingStep::tokens_per_step() const {
  return static_cast<std::int64_t>(cfg_.train.batch_size) * task_->train_length();
}

StepResult TrainingStep::run(std::int64_t step, bool stop_requested, StepWatcher* watcher) {
  StepResult result;
  enter(watcher, StepPhase::data);
  task_->train_batch(cfg_.seed, step, comm_.rank() * local_batch_, local_batch_, batch_);

  // Global count of labelled positions and the stop flag, agreed by every rank before the forward.
  std::int64_t local_count = 0;
  for (auto t : batch_.targets) local_count += t != data::kIgnoreIndex;
  std::int64_t agree[2] = {local_count, stop_requested ? 1 : 0};
  comm_.allreduce_sum(std::span<std::int64_t>(agree, 2));
  if (agree[1] != 0) {
    result.stopped = true;
    return result;
  }
  const double n_labels = static_cast<double>(std::max<std::int64_t>(agree[0], 1));

  // Forward, loss (mean over every labelled position of the global batch), backward, and the
  // gradient summed over the ranks.
  double loss_sum = cfg_.train.deterministic ? deterministic_gradient(batch_, n_labels, watcher)
                                             : data_parallel_gradient(batch_, n_labels, watcher);
  if (options_.nan_at_step == step) loss_sum = std::numeric_limits<double>::quiet_NaN();
  result.loss = loss_sum / n_labels;
  if (watcher != nullptr) watcher->gradient_ready(step, batch_);

  enter(watcher, StepPhase::optimizer);
  result.grad_norm = optim::clip_grad_norm(store_.grads(), cfg_.train.grad_clip);
  const std::int64_t total = cfg_.train.steps;
  result.lr = optim::scheduled_lr(cfg_.schedule, cfg_.optimizer.lr, std::min(step, total), total);
  result.finite = std::isfinite(result.loss) && std::isfinite(result.grad_norm);
  if (!result.finite) return result;  // divergence is a status: no update
  if (watcher != nullptr) watcher->before_update(step, result.lr);
  optimizer_->step(refs_, step, result.lr);
  return result;
}

double TrainingStep::data_parallel_gradient(const data::Batch& batch, double n_labels, StepWatcher* watcher) {
  const int rows = batch.batch * batch.length;
  enter(watcher, StepPhase::forward);
  store_.zero_grad();
  const float* logits = model_.forward(batch.inputs.data(), batch.batch, batch.length);
  dlogits_.resize(static_cast<std::size_t>(rows) * vocab_);
  const auto st = nn::cross_entropy<float>(logits, batch.targets.data(), rows, vocab_, data::kIgnoreIndex,
                                           dlogits_.data(), static_cast<float>(1.0 / n_labels), nullptr);
  enter(watcher, StepPhase::backward);
  if (reducer_) {
    reducer_->begin();
    model_.backward(dlogits_.data(), [&](std::size_t id) { reducer_->ready(store_.params()[id].offset); });
    enter(watcher, StepPhase::reduce);
    reducer_->finish();
  } else {
    model_.backward(dlogits_.data());
    enter(watcher, StepPhase::reduce);
  }
  double loss_sum = st.loss_sum;
  comm_.allreduce_sum(std::span<double>(&loss_sum, 1));
  return loss_sum;
}

// The global batch is cut into micro_shards_ shards of batch_size / micro_shards_ sequences; this
// rank holds shards [rank * per_rank, (rank + 1) * per_rank), which is its local batch. Each
// shard's gradient is computed alone (same shapes whatever the rank count), the rank sums its
// shards as a binary tree, the ranks' partial sums are gathered and every rank finishes the same
// tree: the float operations are those of one rank doing everything.
double TrainingStep::deterministic_gradient(const data::Batch& batch, double n_labels, StepWatcher* watcher) {
  const int per_rank = micro_shards_ / comm_.size();
  const int shard_batch = cfg_.train.batch_size / micro_shards_;
  const int rows = shard_batch * batch.length;
  const std::size_t shard_tokens = static_cast<std::size_t>(rows);
  dlogits_.resize(shard_tokens * vocab_);
  shard_loss_.assign(static_cast<std::size_t>(per_rank), 0.0);
  tree_.reset();
  for (int j = 0; j < per_rank; ++j) {
    const std::int32_t* inputs = batch.inputs.data() + static_cast<std::size_t>(j) * shard_tokens;
    const std::int32_t* targets = batch.targets.data() + static_cast<std::size_t>(j) * shard_tokens;
    enter(watcher, StepPhase::forward);
    store_.zero_grad();
    const float* logits = model_.forward(inputs, shard_batch, batch.length);
    const auto st = nn::cross_entropy<float>(logits, targets, rows, vocab_, data::kIgnoreIndex, dlogits_.data(),
                                             static_cast<float>(1.0 / n_labels), nullptr);
    enter(watcher, StepPhase::backward);
    model_.backward(dlogits_.data());
    shard_loss_[static_cast<std::size_t>(j)] = st.loss_sum;
    tree_.push(store_.grads());
  }
  enter(watcher, StepPhase::reduce);
  const std::span<const float> local = tree_.root();
  const std::span<float> grads = store_.grads();
  if (comm_.size() == 1) {
    std::copy(local.begin(), local.end(), grads.begin());
  } else {
    // The top log2(ranks) levels of the tree, over the ranks' partial sums in rank order.
    const std::size_t n = local.size();
    gathered_.resize(n * static_cast<std::size_t>(comm_.size()));
    comm_.allgather(local, std::span<float>(gathered_));
    for (std::size_t width = static_cast<std::size_t>(comm_.size()); width > 1; width /= 2)
      for (std::size_t i = 0; i < width / 2; ++i) {
        float* out = gathered_.data() + i * n;
        const float* left = gathered_.data() + 2 * i * n;
        const float* right = left + n;
        for (std::size_t k = 0; k < n; ++k) out[k] = left[k] + right[k];
      }
    std::copy(gathered_.begin(), gathered_.begin() + static_cast<std::ptrdiff_t>(n), grads.begin());
  }
  // Loss: every shard's sum, added in shard order.
  all_shard_loss_.resize(static_cast<std::size_t>(micro_shards_));
  comm_.allgather(std::span<const double>(shard_loss_), std::span<double>(all_shard_loss_));
  double loss_sum = 0;
  for (double x : all_shard_loss_) loss_sum += x;
  return loss_sum;
}

}  // namespace expt::experiments
