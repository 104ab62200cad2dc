#include "experiments/trial/evaluator.hpp"

#include <fmt/format.h>

#include <limits>

#include "core/nn/cross_entropy.hpp"

namespace expt::experiments {

Evaluator::Evaluator(const config::TrialConfig& cfg, comm::Communicator& comm, TrainingStep& step)
    : cfg_(cfg), comm_(comm), step_(step) {
  for (int L : step.task().eval_lengths()) {
    schema_.fields.push_back(fmt::format("loss@{}", L));
    schema_.fields.push_back(fmt::format("token_acc@{}", L));
    schema_.fields.push_back(fmt::format("seq_acc@{}", L));
    schema_.prefix_lengths.push_back(L);
  }
}

// Evaluation on the fixed eval set: for every eval length, eval_batches batches of batch_size
// sequences, split over the ranks (rank r takes sequences [r*b, (r+1)*b) of each batch, so the
// set is the same whatever the rank count). Per-length sequence accuracy ("prefix accuracy") for
// prefix n is the fraction of sequences whose first n positions are all correct.
void Evaluator::accumulate(const data::Batch& batch, int L, double* acc) {
  const float* logits = step_.model().forward(batch.inputs.data(), batch.batch, batch.length);
  correct_.resize(batch.inputs.size());
  const auto st = nn::cross_entropy<float>(logits, batch.targets.data(), batch.batch * batch.length, step_.vocab(),
                                           data::kIgnoreIndex, nullptr, 0.0f, correct_.data());
  acc[0] += st.loss_sum;
  acc[1] += static_cast<double>(st.count);
  acc[2] += static_cast<double>(st.correct);
  for (int b = 0; b < batch.batch; ++b) {
    int first_error = L;
    for (int t = 0; t < L; ++t)
      if (!correct_[static_cast<std::size_t>(b) * L + t]) {
        first_error = t;
        break;
      }
    acc[3 + static_cast<std::size_t>(first_error)] += 1.0;
  }
}

EvalResult Evaluator::evaluate() {
  EvalResult out;
  data::Batch batch;
  const auto lengths = step_.task().eval_lengths();
  for (std::size_t li = 0; li < lengths.size(); ++li) {
    const int L = lengths[li];
    // sums: loss, labelled count, correct labels, then first-error histogram [L + 1]
    const std::size_t width = 3 + static_cast<std::size_t>(L) + 1;
    std::vector<double> acc(width, 0.0);
    if (!cfg_.train.deterministic) {
      for (int bi = 0; bi < cfg_.train.eval_batches; ++bi) {
        step_.task().eval_batch(cfg_.seed, L, bi * comm_.size() + comm_.rank(), step_.local_batch(), batch);
        accumulate(batch, L, acc.data());
      }
      comm_.allreduce_sum(std::span<double>(acc));
    } else {
      // Every eval batch in the training micro-shards; each shard's sums are kept apart, gathered,
      // and added in shard order, so the result does not depend on the rank count.
      const int per_rank = step_.micro_shards() / comm_.size();
      const int shard_batch = cfg_.train.batch_size / step_.micro_shards();
      const std::size_t local_n = static_cast<std::size_t>(cfg_.train.eval_batches) * per_rank;
      std::vector<double> local(local_n * width, 0.0);  // [eval batch][shard of this rank][width]
      for (int bi = 0; bi < cfg_.train.eval_batches; ++bi)
        for (int j = 0; j < per_rank; ++j) {
          const int shard = comm_.rank() * per_rank + j;
          step_.task().eval_batch(cfg_.seed, L, bi * step_.micro_shards() + shard, shard_batch, batch);
          accumulate(batch, L, local.data() + (static_cast<std::size_t>(bi) * per_rank + j) * width);
        }
      std::vector<double> all(local.size() * static_cast<std::size_t>(comm_.size()));
      comm_.allgather(std::span<const double>(local), std::span<double>(all));  // [rank][batch][shard][width]
      for (int bi = 0; bi < cfg_.train.eval_batches; ++bi)
        for (int r = 0; r < comm_.size(); ++r)
          for (int j = 0; j < per_rank; ++j) {
            const double* part =
                all.data() + ((static_cast<std::size_t>(r) * cfg_.train.eval_batches + bi) * per_rank + j) * width;
            for (std::size_t k = 0; k < width; ++k) acc[k] += part[k];
          }
    }
    const double n_seq = static_cast<double>(cfg_.train.eval_batches) * cfg_.train.batch_size;
    const double loss = acc[1] > 0 ? acc[0] / acc[1] : std::numeric_limits<double>::quiet_NaN();
    std::vector<float> prefix(static_cast<std::size_t>(L));
    // prefix[n-1] = #(first_error >= n) / n_seq, accumulated from the end of the histogram.
    double at_least = acc[3 + static_cast<std::size_t>(L)];
    for (int n = L; n >= 1; --n) {
      prefix[static_cast<std::size_t>(n) - 1] = static_cast<float>(at_least / n_seq);
      at_least += acc[3 + static_cast<std::size_t>(n) - 1];
    }
    out.values.push_back(static_cast<float>(loss));
    out.values.push_back(static_cast<float>(acc[1] > 0 ? acc[2] / acc[1] : 0.0));
    out.values.push_back(prefix.back());
    out.prefix_acc.push_back(std::move(prefix));
    if (li == 0) out.train_length_loss = loss;
  }
  return out;
}

}  // namespace expt::experiments
