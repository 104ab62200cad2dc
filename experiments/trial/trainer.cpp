#include "experiments/trial/trainer.hpp"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/config/loader.hpp"
#include "core/data/task.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/checkpoint.hpp"
#include "core/io/metrics.hpp"
#include "core/io/trial_directory.hpp"
#include "core/nn/cross_entropy.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"
#include "experiments/trial/grad_trace.hpp"
#include "experiments/trial/optimizer_diagnostics.hpp"
#include "experiments/trial/progress.hpp"
#include "kernels/gemm.hpp"
#include "optimizers/clip.hpp"
#include "optimizers/optimizer.hpp"
#include "optimizers/schedule.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoll(v, nullptr, 10);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// log.txt of the trial (written by the group's rank 0 only) plus the console.
class TrialLog {
 public:
  TrialLog(const fs::path& file, bool enabled, Progress* progress) : enabled_(enabled), progress_(progress) {
    if (enabled_) {
      out_.open(file, std::ios::app);
      if (!out_) throw std::runtime_error("cannot open " + file.string() + " for appending");
    }
  }
  void info(const std::string& msg) {
    if (!enabled_) return;
    out_ << io::utc_time_now() << " " << msg << '\n';
    out_.flush();
    if (progress_ != nullptr) progress_->message(msg);
  }

 private:
  bool enabled_;
  Progress* progress_;
  std::ofstream out_;
};

// Sums equal-length vectors pushed one at a time as a perfect binary tree in push order (for a
// power-of-two count): leaves g0..g3 give (g0 + g1) + (g2 + g3). A stack of partial sums, one per
// tree level, so memory is O(log count) vectors. The deterministic mode relies on this order being
// the same whatever the number of ranks.
class TreeSum {
 public:
  void reset() { depth_ = 0; }
  void push(std::span<const float> g) {
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
  std::span<const float> root() const {
    if (depth_ != 1) throw std::logic_error("TreeSum::root: the pushed count is not a power of two");
    return sums_[0];
  }

 private:
  std::vector<std::vector<float>> sums_;
  std::vector<long> leaves_;
  std::size_t depth_ = 0;
};

comm::ReductionMode reduction_mode(const TrainerOptions& opt) {
  if (opt.reduction) return *opt.reduction;
  const char* env = std::getenv("EXPT_GRAD_REDUCTION");
  if (env == nullptr || *env == '\0') return comm::ReductionMode::overlapped;
  return comm::reduction_mode_from_string(env);
}

// Buckets of at least this many floats (256 KiB): smaller layers are merged with their neighbours
// so that a tiny layer does not cost a collective's latency on its own.
constexpr std::size_t kMinBucketElements = std::size_t{1} << 16;

struct EvalResult {
  std::vector<float> values;                   // loss, token_acc, seq_acc per eval length
  std::vector<std::vector<float>> prefix_acc;  // per eval length, [length]
  double train_length_loss = 0;
};

}  // namespace

TrainerHooks TrainerHooks::from_environment() {
  TrainerHooks h;
  h.nan_at_step = env_int("EXPT_TEST_NAN_AT_STEP", -1);
  h.throw_at_step = env_int("EXPT_TEST_THROW_AT_STEP", -1);
  h.step_delay_ms = static_cast<int>(env_int("EXPT_TEST_STEP_DELAY_MS", 0));
  const char* drop = std::getenv("EXPT_TEST_DROP_RESUME_STATE");
  h.drop_optimizer_state = drop != nullptr && std::string(drop) == "optimizer";
  return h;
}

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

namespace {

class Trainer {
 public:
  Trainer(const config::TrialConfig& cfg, comm::Communicator& comm, const TrainerOptions& opt)
      : cfg_(cfg),
        comm_(comm),
        opt_(opt),
        dir_(cfg.out),
        leader_(comm.rank() == 0),
        task_(data::make_task(cfg.task)),
        vocab_(cfg.model.vocab_size > 0 ? cfg.model.vocab_size : task_->vocab_size()),
        model_(cfg.model, vocab_, store_) {
    if (cfg.train.batch_size % comm.size() != 0)
      throw std::runtime_error(fmt::format("train.batch_size {} is not divisible by the {} ranks of the trial",
                                           cfg.train.batch_size, comm.size()));
    local_batch_ = cfg.train.batch_size / comm.size();
    micro_shards_ = config::deterministic_micro_shards(cfg.train.batch_size);
    if (cfg.train.deterministic && micro_shards_ % comm.size() != 0)
      throw std::runtime_error(fmt::format(
          "train.deterministic cuts train.batch_size {} into {} micro-shard(s), which {} ranks cannot share",
          cfg.train.batch_size, micro_shards_, comm.size()));
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
          reduction_mode(opt));
    }
    if (cfg.train.diagnostics_every > 0) diagnostics_ = std::make_unique<DiagnosticsRecorder>(store_);
    params_before_.resize(store_.size());
    for (int L : task_->eval_lengths()) {
      eval_schema_.fields.push_back(fmt::format("loss@{}", L));
      eval_schema_.fields.push_back(fmt::format("token_acc@{}", L));
      eval_schema_.fields.push_back(fmt::format("seq_acc@{}", L));
      eval_schema_.prefix_lengths.push_back(L);
    }
  }

  TrialOutcome run();

 private:
  TrialOutcome train(TrialLog& log, io::CheckpointStore& ckpt, Progress* progress);
  void write_attempt(const std::string& event, const nlohmann::json& extra);
  void restore(std::int64_t step);
  StateDict checkpoint_state() const;
  EvalResult evaluate();
  // One forward of `batch` at eval length L; adds loss, labelled count, correct labels and the
  // first-error histogram [L + 1] into acc[0..3+L].
  void accumulate_eval(const data::Batch& batch, int L, double* acc);
  // Gradient of the step in the store's gradient buffer (summed over the ranks) and the global
  // loss sum. The data-parallel path reduces buckets while backward runs; the deterministic path
  // sums fixed micro-shards in a fixed tree order.
  double data_parallel_gradient(const data::Batch& batch, double n_labels);
  double deterministic_gradient(const data::Batch& batch, double n_labels);
  void open_segment(std::int64_t first_step);
  io::ResultInfo result_info() const;
  TrialOutcome finish(io::TrialSummary summary);

  const config::TrialConfig& cfg_;
  comm::Communicator& comm_;
  TrainerOptions opt_;
  io::TrialDirectory dir_;
  bool leader_;
  std::unique_ptr<data::Task> task_;
  int vocab_;
  nn::ParameterStore<float> store_;
  nn::Model<float> model_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::vector<optim::ParamRef> refs_;
  std::vector<float> params_before_;
  std::unique_ptr<GradTraceWriter> trace_;            // train.record_grad_trace, leader only
  std::unique_ptr<DiagnosticsRecorder> diagnostics_;  // train.diagnostics_every > 0
  std::vector<float> dlogits_;
  std::vector<std::uint8_t> correct_;
  int local_batch_ = 1;
  int micro_shards_ = 1;                              // train.deterministic: micro-shards of the global batch
  std::unique_ptr<comm::BucketedAllreduce> reducer_;  // data-parallel (size > 1, not deterministic)
  TreeSum tree_;
  std::vector<float> gathered_;         // deterministic: every rank's partial gradient sum
  std::vector<double> shard_loss_;      // deterministic: this rank's micro-shard loss sums
  std::vector<double> all_shard_loss_;  // deterministic: every micro-shard's, in shard order
  io::EvalSchema eval_schema_;
  std::unique_ptr<io::MetricsSegmentWriter> segment_;
  std::string hash_;
  std::string legacy_id_;  // a legacy directory's old id, which its checkpoints carry (core/io/trial_identity.hpp)
  int attempt_ = 1;

  // Resumable trainer state (saved in every checkpoint).
  std::int64_t step_ = 0;
  std::int64_t tokens_ = 0;
  double wall_offset_ = 0;  // training wall time of earlier attempts
  double best_eval_loss_ = std::numeric_limits<double>::infinity();
  double last_eval_loss_ = std::numeric_limits<double>::infinity();
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  double wall() const { return wall_offset_ + seconds_since(t0_); }
};

void Trainer::write_attempt(const std::string& event, const nlohmann::json& extra) {
  if (leader_) dir_.append_attempt_event(attempt_, event, step_, comm_.size(), extra);
}

StateDict Trainer::checkpoint_state() const {
  StateDict s;
  s.put("params", std::span<const float>(store_.values()));
  s.merge("optimizer", optimizer_->state());
  if (diagnostics_) diagnostics_->save(s);
  s.put_scalar("trainer/step", step_);
  s.put_scalar("trainer/tokens", tokens_);
  s.put_scalar("trainer/wall_s", wall());
  s.put_scalar("trainer/best_eval_loss", best_eval_loss_);
  s.put_scalar("trainer/last_eval_loss", last_eval_loss_);
  s.put_string("trainer/config_hash", hash_);
  return s;
}

void Trainer::restore(std::int64_t step) {
  const StateDict s = dir_.checkpoints().load(step);
  const std::string& saved = s.string("trainer/config_hash");
  if (saved != hash_ && (legacy_id_.empty() || saved != legacy_id_))
    throw std::runtime_error(fmt::format("checkpoint step-{} in {} belongs to another config (hash {}, expected {})",
                                         step, dir_.path().string(), s.string("trainer/config_hash"), hash_));
  s.get_into("params", store_.values());
  if (!opt_.hooks.drop_optimizer_state) optimizer_->load_state(s.sub("optimizer"));
  if (diagnostics_) diagnostics_->load(s);
  step_ = s.scalar_int("trainer/step");
  tokens_ = s.scalar_int("trainer/tokens");
  wall_offset_ = s.scalar_double("trainer/wall_s");
  best_eval_loss_ = s.scalar_double("trainer/best_eval_loss");
  last_eval_loss_ = s.scalar_double("trainer/last_eval_loss");
}

void Trainer::open_segment(std::int64_t first_step) {
  if (!leader_) return;
  segment_ = std::make_unique<io::MetricsSegmentWriter>(dir_.segment_path(attempt_, first_step), eval_schema_, attempt_,
                                                        first_step);
}

// Evaluation on the fixed eval set: for every eval length, eval_batches batches of batch_size
// sequences, split over the ranks (rank r takes sequences [r*b, (r+1)*b) of each batch, so the
// set is the same whatever the rank count). Per-length sequence accuracy ("prefix accuracy") for
// prefix n is the fraction of sequences whose first n positions are all correct.
void Trainer::accumulate_eval(const data::Batch& batch, int L, double* acc) {
  const float* logits = model_.forward(batch.inputs.data(), batch.batch, batch.length);
  correct_.resize(batch.inputs.size());
  const auto st = nn::cross_entropy<float>(logits, batch.targets.data(), batch.batch * batch.length, vocab_,
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

EvalResult Trainer::evaluate() {
  EvalResult out;
  data::Batch batch;
  const auto lengths = task_->eval_lengths();
  for (std::size_t li = 0; li < lengths.size(); ++li) {
    const int L = lengths[li];
    // sums: loss, labelled count, correct labels, then first-error histogram [L + 1]
    const std::size_t width = 3 + static_cast<std::size_t>(L) + 1;
    std::vector<double> acc(width, 0.0);
    if (!cfg_.train.deterministic) {
      for (int bi = 0; bi < cfg_.train.eval_batches; ++bi) {
        task_->eval_batch(cfg_.seed, L, bi * comm_.size() + comm_.rank(), local_batch_, batch);
        accumulate_eval(batch, L, acc.data());
      }
      comm_.allreduce_sum(std::span<double>(acc));
    } else {
      // Every eval batch in the training micro-shards; each shard's sums are kept apart, gathered,
      // and added in shard order, so the result does not depend on the rank count.
      const int per_rank = micro_shards_ / comm_.size();
      const int shard_batch = cfg_.train.batch_size / micro_shards_;
      const std::size_t local_n = static_cast<std::size_t>(cfg_.train.eval_batches) * per_rank;
      std::vector<double> local(local_n * width, 0.0);  // [eval batch][shard of this rank][width]
      for (int bi = 0; bi < cfg_.train.eval_batches; ++bi)
        for (int j = 0; j < per_rank; ++j) {
          const int shard = comm_.rank() * per_rank + j;
          task_->eval_batch(cfg_.seed, L, bi * micro_shards_ + shard, shard_batch, batch);
          accumulate_eval(batch, L, local.data() + (static_cast<std::size_t>(bi) * per_rank + j) * width);
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

io::ResultInfo Trainer::result_info() const {
  io::ResultInfo info;
  info.trial_id = hash_;
  info.config_hash = hash_;
  info.config_yaml = config::to_canonical_yaml(cfg_);
  for (auto& [k, v] : config::typed_config(cfg_)) info.hparams.emplace_back(k, v);
  info.scale = {{"n_params", model_.n_params()},
                {"n_params_nonembed", model_.n_params_nonembed()},
                {"steps", cfg_.train.steps},
                {"batch", static_cast<std::int64_t>(cfg_.train.batch_size)},
                {"seq_len", static_cast<std::int64_t>(task_->train_length())},
                {"group_size", static_cast<std::int64_t>(comm_.size())}};
  return info;
}

TrialOutcome Trainer::finish(io::TrialSummary summary) {
  TrialOutcome outcome;
  if (leader_) {
    if (segment_) segment_->close();
    segment_.reset();
    summary.n_attempts = attempt_;
    if (diagnostics_) diagnostics_->write(dir_.diagnostics_path());
    dir_.consolidate(result_info(), summary, attempt_, step_, comm_.size());
    write_attempt("end", {{"status", summary.status}});
    outcome.result = dir_.result_path();
  }
  comm_.barrier();
  outcome.summary = std::move(summary);
  return outcome;
}

TrialOutcome Trainer::run() {
  hash_ = config::config_hash(cfg_);
  if (leader_) dir_.create();
  comm_.barrier();
  std::optional<io::DirectoryLock> lock;
  if (leader_) lock.emplace(dir_.lock());

  // Damaged files of earlier attempts are moved to quarantine/ (never deleted) before anything
  // reads them (docs/reliability.md).
  std::vector<std::string> quarantined;
  if (leader_) quarantined = dir_.quarantine_damaged();
  comm_.barrier();

  // A directory belongs to one trial: refuse to mix another config's results into it.
  legacy_id_ = dir_.claim(cfg_, leader_);

  // A finished trial (COMPLETED or DIVERGED) is not rerun.
  if (const auto summary = dir_.read_result();
      summary && (summary->status == "COMPLETED" || summary->status == "DIVERGED")) {
    TrialOutcome outcome;
    outcome.summary = *summary;
    outcome.already_finished = true;
    outcome.result = dir_.result_path();
    return outcome;
  }

  std::unique_ptr<Progress> progress;
  if (leader_) progress = std::make_unique<Progress>(opt_.progress, cfg_.train.steps, cfg_.train.log_every);
  TrialLog log(dir_.log_path(), leader_, progress.get());

  // Attempt number = previous attempts + 1, agreed by every rank.
  std::int64_t attempt = leader_ ? dir_.count_attempts() + 1 : 0;
  comm_.broadcast(std::span<std::int64_t>(&attempt, 1), 0);
  attempt_ = static_cast<int>(attempt);

  for (const auto& q : quarantined) {
    log.info("quarantined " + q);
    write_attempt("quarantine", {{"what", q}});
  }
  io::CheckpointStore ckpt = dir_.checkpoints();
  if (leader_)
    for (const auto& q : dir_.quarantine_incomplete_checkpoints()) {
      log.info(fmt::format("quarantined incomplete checkpoint {}", q.string()));
      write_attempt("quarantine", {{"path", q.string()}});
    }
  comm_.barrier();
  try {
    return train(log, ckpt, progress.get());
  } catch (const std::exception& e) {
    // A failing trial records why and ends as FAILED; a rerun retries it from its last checkpoint.
    log.info(fmt::format("trial {} FAILED at step {}: {}", hash_, step_ + 1, e.what()));
    write_attempt("fail", {{"message", e.what()}});
    io::TrialSummary summary;
    summary.status = "FAILED";
    summary.message = e.what();
    summary.steps_done = step_;
    summary.tokens_seen = tokens_;
    summary.wall_s = wall();
    summary.best_eval_loss = best_eval_loss_;
    summary.final_eval_loss = std::numeric_limits<double>::infinity();
    return finish(std::move(summary));
  }
}

double Trainer::data_parallel_gradient(const data::Batch& batch, double n_labels) {
  const int rows = batch.batch * batch.length;
  store_.zero_grad();
  const float* logits = model_.forward(batch.inputs.data(), batch.batch, batch.length);
  dlogits_.resize(static_cast<std::size_t>(rows) * vocab_);
  const auto st = nn::cross_entropy<float>(logits, batch.targets.data(), rows, vocab_, data::kIgnoreIndex,
                                           dlogits_.data(), static_cast<float>(1.0 / n_labels), nullptr);
  if (reducer_) {
    reducer_->begin();
    model_.backward(dlogits_.data(), [&](std::size_t id) { reducer_->ready(store_.params()[id].offset); });
    reducer_->finish();
  } else {
    model_.backward(dlogits_.data());
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
double Trainer::deterministic_gradient(const data::Batch& batch, double n_labels) {
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
    store_.zero_grad();
    const float* logits = model_.forward(inputs, shard_batch, batch.length);
    const auto st = nn::cross_entropy<float>(logits, targets, rows, vocab_, data::kIgnoreIndex, dlogits_.data(),
                                             static_cast<float>(1.0 / n_labels), nullptr);
    model_.backward(dlogits_.data());
    shard_loss_[static_cast<std::size_t>(j)] = st.loss_sum;
    tree_.push(store_.grads());
  }
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

TrialOutcome Trainer::train(TrialLog& log, io::CheckpointStore& ckpt, Progress* progress) {
  const auto latest = ckpt.latest_committed();
  if (latest) restore(*latest);
  write_attempt("start", {{"from_step", step_}});
  log.info(fmt::format("trial {} attempt {}: {} on {} rank(s), {} parameters, {}", hash_, attempt_,
                       latest ? fmt::format("resuming from step {}", step_) : std::string("starting"), comm_.size(),
                       model_.n_params(), dir_.path().string()));

  kernels::set_blas_threads(1);
  t0_ = std::chrono::steady_clock::now();
  const std::int64_t total = cfg_.train.steps;
  const auto on_eval_grid = [&](std::int64_t s) { return s % cfg_.train.eval_every == 0 || s == total; };

  open_segment(step_ == 0 ? 0 : step_ + 1);
  if (leader_ && !cfg_.train.record_grad_trace.empty()) {
    // A trace holds a whole run from the initial parameters; a resumed attempt cannot extend one.
    if (step_ == 0)
      trace_ = std::make_unique<GradTraceWriter>(cfg_.train.record_grad_trace, store_);
    else
      log.info(
          fmt::format("gradient trace {} not recorded: this attempt resumes at step {} (a trace needs one "
                      "uninterrupted run from step 0)",
                      cfg_.train.record_grad_trace, step_));
  }
  if (step_ == 0) {  // eval of the initial model, step 0
    const auto ev = evaluate();
    if (leader_) segment_->append_eval(io::EvalRow{0, 0, wall(), ev.values, ev.prefix_acc});
  }

  data::Batch batch;
  io::TrialSummary summary;
  summary.status = "COMPLETED";
  const std::int64_t tokens_per_step = static_cast<std::int64_t>(cfg_.train.batch_size) * task_->train_length();
  while (step_ < total) {
    const std::int64_t step = step_ + 1;
    if (opt_.hooks.throw_at_step == step) throw std::runtime_error(fmt::format("injected failure at step {}", step));
    const auto step_t0 = std::chrono::steady_clock::now();
    task_->train_batch(cfg_.seed, step, comm_.rank() * local_batch_, local_batch_, batch);

    // Global count of labelled positions and the stop flag, agreed by every rank before backward.
    std::int64_t local_count = 0;
    for (auto t : batch.targets) local_count += t != data::kIgnoreIndex;
    std::int64_t agree[2] = {local_count, g_stop_signal.load() != 0 ? 1 : 0};
    comm_.allreduce_sum(std::span<std::int64_t>(agree, 2));
    if (agree[1] != 0) break;  // checkpoint below, then stop
    const double n_labels = static_cast<double>(std::max<std::int64_t>(agree[0], 1));

    // Forward, loss (mean over every labelled position of the global batch), backward, and the
    // gradient summed over the ranks; loss and gradient norm are taken after the reduction, so
    // every rank sees the same numbers and makes the same clipping and divergence decisions.
    double loss_sum =
        cfg_.train.deterministic ? deterministic_gradient(batch, n_labels) : data_parallel_gradient(batch, n_labels);
    if (opt_.hooks.nan_at_step == step) loss_sum = std::numeric_limits<double>::quiet_NaN();
    const double loss = loss_sum / n_labels;

    const double grad_norm = optim::clip_grad_norm(store_.grads(), cfg_.train.grad_clip);
    const double lr = optim::scheduled_lr(cfg_.schedule, cfg_.optimizer.lr, step, total);
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    io::TrainRow row{step,
                     tokens_ + tokens_per_step,
                     0.0,
                     static_cast<float>(loss),
                     static_cast<float>(lr),
                     static_cast<float>(grad_norm),
                     0.0f,
                     0.0f,
                     0,
                     static_cast<std::uint8_t>(finite ? 0 : 1)};
    if (!finite) {
      // Divergence is a status, never a number: loss +inf, the first non-finite step recorded.
      row.wall_s = wall();
      if (leader_) {
        segment_->append_train(row);
        segment_->append_event(
            io::EventRow{step, row.wall_s, "nan", fmt::format("loss {} grad_norm {}", loss, grad_norm)});
      }
      log.info(
          fmt::format("step {}: non-finite loss ({}) or gradient norm ({}); trial DIVERGED", step, loss, grad_norm));
      summary.status = "DIVERGED";
      summary.diverged_step = step;
      step_ = step;
      break;
    }

    std::copy(store_.values().begin(), store_.values().end(), params_before_.begin());
    if (trace_) trace_->append(store_, lr);
    optimizer_->step(refs_, step, lr);
    double upd2 = 0, par2 = 0;
    const auto values = store_.values();
    for (std::size_t i = 0; i < values.size(); ++i) {
      const double d = static_cast<double>(values[i]) - params_before_[i];
      upd2 += d * d;
      par2 += static_cast<double>(values[i]) * values[i];
    }
    if (diagnostics_ && leader_ && step % cfg_.train.diagnostics_every == 0)
      diagnostics_->record(step, store_, params_before_);
    step_ = step;
    tokens_ += tokens_per_step;
    row.update_norm = static_cast<float>(std::sqrt(upd2));
    row.param_norm = static_cast<float>(std::sqrt(par2));
    row.wall_s = wall();
    if (leader_) {
      segment_->append_train(row);
      progress->step(step, loss, static_cast<double>(tokens_per_step));
      if (opt_.on_step) {
        const double dt = seconds_since(step_t0);
        opt_.on_step(StepProgress{step, total, loss, dt > 0 ? static_cast<double>(tokens_per_step) / dt : 0.0, wall()});
      }
    }

    if (on_eval_grid(step)) {
      const auto ev = evaluate();
      last_eval_loss_ = ev.train_length_loss;
      if (std::isfinite(last_eval_loss_)) best_eval_loss_ = std::min(best_eval_loss_, last_eval_loss_);
      if (leader_) {
        segment_->append_eval(io::EvalRow{step, tokens_, wall(), ev.values, ev.prefix_acc});
        log.info(fmt::format("eval step {}: loss {:.4f} token_acc {:.4f} seq_acc {:.4f} (length {})", step,
                             ev.values[0], ev.values[1], ev.values[2], task_->train_length()));
      }
    }

    const bool periodic = cfg_.train.checkpoint_every > 0 && step % cfg_.train.checkpoint_every == 0 && step < total;
    if (periodic) {
      // Order fixed by results-format.md: close the segment, write the checkpoint, COMMIT, new segment.
      // Every rank builds the state: a sharded optimizer gathers it from the owners (a collective).
      const StateDict state = checkpoint_state();
      if (leader_) {
        segment_->append_event(io::EventRow{step, wall(), "checkpoint", ""});
        segment_->close();
        ckpt.save(step, state);
      }
      comm_.barrier();
      open_segment(step + 1);
    }
    if (opt_.hooks.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.hooks.step_delay_ms));
  }

  if (summary.status == "COMPLETED" && step_ < total) {
    // Stopped by a signal: checkpoint at this step boundary so that a rerun resumes here.
    const int sig = g_stop_signal.load();
    const StateDict state = checkpoint_state();  // on every rank, as above
    if (leader_) {
      segment_->close();
      segment_.reset();
      if (!ckpt.latest_committed() || *ckpt.latest_committed() != step_) ckpt.save(step_, state);
      log.info(fmt::format("stopped by signal {} at step {}; checkpoint written, rerun the same command to resume", sig,
                           step_));
      write_attempt("interrupted", {{"signal", sig}});
    }
    comm_.barrier();
    TrialOutcome outcome;
    outcome.interrupted = true;
    outcome.signal = sig;
    outcome.summary.status = "RUNNING";
    outcome.summary.steps_done = step_;
    return outcome;
  }

  if (progress != nullptr) progress->done();
  if (reducer_ && reducer_->times().steps > 0) {
    const auto& t = reducer_->times();
    log.info(
        fmt::format("gradient allreduce ({}, {} bucket(s), {} floats): {:.3f} ms/step inside backward, {:.3f} "
                    "ms/step exposed after backward, over {} step(s)",
                    comm::to_string(reducer_->mode()), reducer_->buckets().size(), store_.size(),
                    1e3 * t.in_backward_s / static_cast<double>(t.steps),
                    1e3 * t.exposed_s / static_cast<double>(t.steps), t.steps));
  }
  if (trace_) {
    const std::int64_t recorded = trace_->finish();
    log.info(fmt::format("gradient trace: {} steps written to {}", recorded, cfg_.train.record_grad_trace));
    trace_.reset();
  }
  summary.steps_done = step_;
  summary.tokens_seen = tokens_;
  summary.wall_s = wall();
  summary.best_eval_loss = best_eval_loss_;
  summary.final_eval_loss = summary.status == "DIVERGED" ? std::numeric_limits<double>::infinity() : last_eval_loss_;
  log.info(fmt::format("trial {} {}: final eval loss {:.4f} after {} steps, {:.1f} s", hash_, summary.status,
                       summary.final_eval_loss, step_, summary.wall_s));
  return finish(std::move(summary));
}

}  // namespace

TrialOutcome run_trial(const config::TrialConfig& cfg, comm::Communicator& comm, const TrainerOptions& options) {
  Trainer trainer(cfg, comm, options);
  return trainer.run();
}

}  // namespace expt::experiments
