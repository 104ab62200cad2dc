#include "experiments/trial/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <initializer_list>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/config/loader.hpp"
#include "core/io/checkpoint.hpp"
#include "core/io/trial_directory.hpp"
#include "core/util/allocation.hpp"
#include "experiments/trial/branching.hpp"
#include "experiments/trial/evaluator.hpp"
#include "experiments/trial/memory_estimate.hpp"
#include "experiments/trial/progress.hpp"
#include "experiments/trial/stop_signal.hpp"
#include "experiments/trial/training_observers.hpp"
#include "experiments/trial/training_step.hpp"
#include "experiments/trial/trial_log.hpp"
#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoll(v, nullptr, 10);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of this process (all threads, user + system), in seconds. An attempt's closing event
// in attempts.jsonl (end, interrupted) carries the attempt's CPU time (decision 137): on a shared
// machine a trial's wall time includes the time other processes held the core, its CPU time not.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

TrainerHooks TrainerHooks::from_environment() {
  TrainerHooks h;
  h.nan_at_step = env_int("EXPT_TEST_NAN_AT_STEP", -1);
  h.throw_at_step = env_int("EXPT_TEST_THROW_AT_STEP", -1);
  h.step_delay_ms = static_cast<int>(env_int("EXPT_TEST_STEP_DELAY_MS", 0));
  const char* drop = std::getenv("EXPT_TEST_DROP_RESUME_STATE");
  h.drop_optimizer_state = drop != nullptr && std::string(drop) == "optimizer";
  h.no_directory_lock = env_int("EXPT_TEST_NO_LEASES", 0) == 1;
  return h;
}

namespace {

// One trial: its directory's life cycle (claim, lock, quarantine, attempts, result) around the
// training loop, which runs the TrainingStep and tells its observers.
class Trainer {
 public:
  Trainer(const config::TrialConfig& cfg, comm::Communicator& comm, const TrainerOptions& opt)
      : cfg_(cfg),
        comm_(comm),
        opt_(opt),
        dir_(cfg.out),
        leader_(comm.rank() == 0),
        step_fn_(cfg, comm, StepOptions{opt.reduction, opt.hooks.nan_at_step}),
        evaluator_(cfg, comm, step_fn_) {
    params_before_.resize(step_fn_.store().size());
  }

  TrialOutcome run();
  // The pre-flight estimate, recorded in the log with the measured peak at the end.
  void set_memory_estimate(const MemoryEstimate& estimate) { memory_ = estimate; }

 private:
  // The training loop's before_update callback: keeps the parameters before the update (for the
  // update norm and the diagnostics) and tells the observers.
  class UpdateWatcher final : public StepWatcher {
   public:
    explicit UpdateWatcher(Trainer& t) : t_(t) {}
    void before_update(std::int64_t step, double lr) override {
      const auto values = t_.step_fn_.store().values();
      std::copy(values.begin(), values.end(), t_.params_before_.begin());
      for (TrainingObserver* o : t_.observers_) o->before_update(step, lr);
    }

   private:
    Trainer& t_;
  };

  TrialOutcome train(TrialLog& log, io::CheckpointStore& ckpt);
  void attach_observers(TrialLog& log, Progress* progress);
  void write_attempt(const std::string& event, const nlohmann::json& extra);
  void restore(const io::CheckpointStore& ckpt, std::int64_t step);
  StateDict checkpoint_state() const;
  // A periodic checkpoint: segment closed, state written and committed, next segment opened;
  // at a fork point the state is also kept as one (written first: a crash before the periodic
  // checkpoint's COMMIT resumes before the fork point and passes it again).
  void checkpoint(io::CheckpointStore& ckpt, std::int64_t step, bool fork_point);
  // A branch's rank 0: starts the directory from the trunk's fork point (TrainerOptions).
  void fork(TrialLog& log);
  // The final checkpoint of a COMPLETED trial (decision 111): segment closed, state written and
  // committed, no segment opened (nothing follows it).
  void final_checkpoint(io::CheckpointStore& ckpt);
  io::ResultInfo result_info() const;
  TrialOutcome finish(io::TrialSummary summary);
  double wall() const { return wall_offset_ + seconds_since(t0_); }
  // This attempt's CPU time so far (this rank's process, from the start of run()).
  double attempt_cpu_s() const { return process_cpu_seconds() - cpu0_; }
  // Rank 0: whether TrainerOptions::still_owner says another worker owns the trial now (sticky).
  bool ownership_lost() {
    if (leader_ && !ownership_lost_ && opt_.still_owner) ownership_lost_ = !opt_.still_owner();
    return ownership_lost_;
  }

  const config::TrialConfig& cfg_;
  comm::Communicator& comm_;
  TrainerOptions opt_;
  io::TrialDirectory dir_;
  bool leader_;
  TrainingStep step_fn_;
  Evaluator evaluator_;
  std::vector<float> params_before_;
  std::string hash_;
  std::string legacy_id_;  // a legacy directory's old id, which its checkpoints carry (core/io/trial_identity.hpp)
  int attempt_ = 1;
  bool ownership_lost_ = false;
  std::optional<MemoryEstimate> memory_;

  // Observers (attach_observers); the ones rank 0 alone has are null elsewhere.
  std::unique_ptr<MetricsRecorder> metrics_;
  std::unique_ptr<EvaluationRecorder> evaluation_;
  std::unique_ptr<ProgressReporter> progress_reporter_;
  std::unique_ptr<GradTraceRecorder> trace_;
  std::unique_ptr<DiagnosticsObserver> diagnostics_;
  std::vector<TrainingObserver*> observers_;

  // Resumable trainer state (saved in every checkpoint with the observers' own).
  std::int64_t step_ = 0;
  std::int64_t tokens_ = 0;
  double wall_offset_ = 0;  // training wall time of earlier attempts
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  double cpu0_ = process_cpu_seconds();  // reset at the start of run()
};

void Trainer::write_attempt(const std::string& event, const nlohmann::json& extra) {
  if (leader_) dir_.append_attempt_event(attempt_, event, step_, comm_.size(), extra);
}

void Trainer::attach_observers(TrialLog& log, Progress* progress) {
  if (leader_) metrics_ = std::make_unique<MetricsRecorder>(dir_, evaluator_.schema(), attempt_);
  evaluation_ = std::make_unique<EvaluationRecorder>(cfg_, evaluator_, metrics_.get(), log,
                                                     step_fn_.task().train_length(), [this] { return wall(); });
  if (leader_)
    progress_reporter_ =
        std::make_unique<ProgressReporter>(*progress, opt_.on_step, cfg_.train.steps, step_fn_.tokens_per_step());
  if (leader_ && !cfg_.train.record_grad_trace.empty())
    trace_ = std::make_unique<GradTraceRecorder>(cfg_.train.record_grad_trace, step_fn_.store(), log);
  if (cfg_.train.diagnostics_every > 0)
    diagnostics_ = std::make_unique<DiagnosticsObserver>(step_fn_.store(), cfg_.train.diagnostics_every, leader_,
                                                         dir_.diagnostics_path());
  // Evaluation last: what the others record of a step (its train row, the diagnostics of its
  // update) comes before the eval that may follow it, as the initial trace comes before step 0's eval.
  for (TrainingObserver* o : std::initializer_list<TrainingObserver*>{
           metrics_.get(), progress_reporter_.get(), trace_.get(), diagnostics_.get(), evaluation_.get()})
    if (o != nullptr) observers_.push_back(o);
}

StateDict Trainer::checkpoint_state() const {
  StateDict s;
  s.put("params", std::span<const float>(step_fn_.store().values()));
  s.merge("optimizer", step_fn_.optimizer().state());
  for (const TrainingObserver* o : observers_) o->save(s);
  s.put_scalar("trainer/step", step_);
  s.put_scalar("trainer/tokens", tokens_);
  s.put_scalar("trainer/wall_s", wall());
  s.put_string("trainer/config_hash", hash_);
  return s;
}

void Trainer::restore(const io::CheckpointStore& ckpt, std::int64_t step) {
  StateDict s = ckpt.load(step);
  const std::string& saved = s.string("trainer/config_hash");
  if (saved != hash_ && (legacy_id_.empty() || saved != legacy_id_))
    throw std::runtime_error(fmt::format("checkpoint step-{} in {} belongs to another config (hash {}, expected {})",
                                         step, dir_.path().string(), s.string("trainer/config_hash"), hash_));
  s.get_into("params", step_fn_.store().values());
  if (!opt_.hooks.drop_optimizer_state) step_fn_.optimizer().load_state(s.take("optimizer"));
  for (TrainingObserver* o : observers_) o->load(s);
  step_ = s.scalar_int("trainer/step");
  tokens_ = s.scalar_int("trainer/tokens");
  wall_offset_ = s.scalar_double("trainer/wall_s");
}

void Trainer::checkpoint(io::CheckpointStore& ckpt, std::int64_t step, bool fork_point) {
  // Every rank builds the state: a sharded optimizer gathers it from the owners (a collective).
  const StateDict state = checkpoint_state();
  if (leader_ && !ownership_lost()) {
    for (TrainingObserver* o : observers_) o->before_checkpoint(step, wall());
    if (fork_point) save_fork_point(dir_, step, state);
    ckpt.save(step, state);
  }
  comm_.barrier();
  for (TrainingObserver* o : observers_) o->after_checkpoint(step);
}

void Trainer::final_checkpoint(io::CheckpointStore& ckpt) {
  // Kept beside the two newest periodic checkpoints (retention keeps 3 here, the periodic ones
  // 2), so the final parameters and optimizer state can be compared and reused while the periodic
  // checkpoints a trial leaves stay what they were. A resume of a completed trial whose result.h5
  // was lost restores this checkpoint and does not write it again.
  std::int64_t written = 0;
  if (leader_) written = ckpt.latest_committed() == step_ ? 1 : 0;
  comm_.broadcast(std::span<std::int64_t>(&written, 1), 0);
  if (written != 0) return;
  const StateDict state = checkpoint_state();  // on every rank: a sharded optimizer gathers
  if (leader_ && !ownership_lost()) {
    for (TrainingObserver* o : observers_) o->before_checkpoint(step_, wall());
    ckpt.save(step_, state, /*keep=*/3);
  }
  comm_.barrier();
}

io::ResultInfo Trainer::result_info() const {
  io::ResultInfo info;
  info.trial_id = hash_;
  info.config_hash = hash_;
  info.config_yaml = config::to_canonical_yaml(cfg_);
  info.machine = kernels::gemm_machine_summary();
  for (auto& [k, v] : config::typed_config(cfg_)) info.hparams.emplace_back(k, v);
  info.scale = {{"n_params", step_fn_.model().n_params()},
                {"n_params_nonembed", step_fn_.model().n_params_nonembed()},
                {"steps", cfg_.train.steps},
                {"batch", static_cast<std::int64_t>(cfg_.train.batch_size)},
                {"seq_len", static_cast<std::int64_t>(step_fn_.task().train_length())},
                {"group_size", static_cast<std::int64_t>(comm_.size())}};
  return info;
}

void Trainer::fork(TrialLog& log) {
  std::string why;
  try {
    why = fork_from_trunk(opt_.trunk_dir, dir_, cfg_, opt_.branch_step, attempt_);
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (why.empty()) {
    log.info(fmt::format("branch of trunk {}: starting from its fork point at step {}", opt_.trunk_dir.string(),
                         opt_.branch_step));
    // step_ is still 0 here (nothing restored yet): the event's step is the fork step.
    step_ = opt_.branch_step;
    write_attempt("fork", {{"trunk", opt_.trunk_dir.filename().string()}, {"from_step", opt_.branch_step}});
    step_ = 0;
    return;
  }
  // A half-written fork leaves no committed checkpoint; its segment would collide with this
  // attempt's first one.
  std::error_code ignored;
  std::filesystem::remove(dir_.segment_path(attempt_, 0), ignored);
  log.info(fmt::format("branch of trunk {} at step {}: not forked ({}); training from scratch", opt_.trunk_dir.string(),
                       opt_.branch_step, why));
  write_attempt("fork_skipped", {{"trunk", opt_.trunk_dir.filename().string()}, {"reason", why}});
}

TrialOutcome Trainer::finish(io::TrialSummary summary) {
  TrialOutcome outcome;
  std::int64_t lost = ownership_lost() ? 1 : 0;
  comm_.broadcast(std::span<std::int64_t>(&lost, 1), 0);
  if (lost != 0) {
    // Another worker owns the trial: its result is theirs to write.
    outcome.ownership_lost = true;
    outcome.summary.status = "RUNNING";
    outcome.summary.steps_done = step_;
    return outcome;
  }
  for (TrainingObserver* o : observers_) o->on_end(summary);
  if (leader_) {
    summary.n_attempts = attempt_;
    dir_.consolidate(result_info(), summary, attempt_, step_, comm_.size());
    write_attempt("end", {{"status", summary.status}, {"cpu_s", attempt_cpu_s()}});
    outcome.result = dir_.result_path();
  }
  comm_.barrier();
  outcome.summary = std::move(summary);
  return outcome;
}

TrialOutcome Trainer::run() {
  cpu0_ = process_cpu_seconds();
  hash_ = config::config_hash(cfg_);
  if (leader_) dir_.create();
  comm_.barrier();
  std::optional<io::DirectoryLock> lock;
  if (leader_ && !opt_.hooks.no_directory_lock) lock.emplace(dir_.lock());

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
  // The leader's fork points, on every rank (a checkpoint is a collective).
  std::int64_t n_fork_points = leader_ ? static_cast<std::int64_t>(opt_.fork_points.size()) : 0;
  comm_.broadcast(std::span<std::int64_t>(&n_fork_points, 1), 0);
  opt_.fork_points.resize(static_cast<std::size_t>(n_fork_points));
  if (n_fork_points > 0) comm_.broadcast(std::span<std::int64_t>(opt_.fork_points), 0);
  // And where to stop (every rank must leave the loop at the same step).
  comm_.broadcast(std::span<std::int64_t>(&opt_.stop_at, 1), 0);

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
  if (leader_ && !opt_.trunk_dir.empty() && !ckpt.latest_committed()) fork(log);
  comm_.barrier();
  attach_observers(log, progress.get());
  try {
    return train(log, ckpt);
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
    summary.best_eval_loss = evaluation_->best_loss();
    summary.final_eval_loss = std::numeric_limits<double>::infinity();
    return finish(std::move(summary));
  }
}

TrialOutcome Trainer::train(TrialLog& log, io::CheckpointStore& ckpt) {
  const auto latest = ckpt.latest_committed();
  if (latest) restore(ckpt, *latest);
  write_attempt("start", {{"from_step", step_}});
  log.info(fmt::format("trial {} attempt {}: {} on {} rank(s), {} parameters, {}", hash_, attempt_,
                       latest ? fmt::format("resuming from step {}", step_) : std::string("starting"), comm_.size(),
                       step_fn_.model().n_params(), dir_.path().string()));
  log.info(kernels::gemm_machine_summary());
  if (memory_) log.info(describe(*memory_));
  if (const auto warning = kernels::gemm_startup_warning()) log.info("warning: " + *warning);

  kernels::set_blas_threads(1);
  t0_ = std::chrono::steady_clock::now();
  const std::int64_t total = cfg_.train.steps;
  for (TrainingObserver* o : observers_) o->on_start(step_);

  io::TrialSummary summary;
  summary.status = "COMPLETED";
  UpdateWatcher watcher(*this);
  // search.halving: a trunk stops at its rung's fork point (a committed checkpoint) until promoted.
  const std::int64_t stop_at = opt_.stop_at > 0 && opt_.stop_at < total ? opt_.stop_at : 0;
  bool paused = stop_at > 0 && step_ >= stop_at;
  while (step_ < total && !paused) {
    const std::int64_t step = step_ + 1;
    if (opt_.hooks.throw_at_step == step) throw std::runtime_error(fmt::format("injected failure at step {}", step));
    const auto step_t0 = std::chrono::steady_clock::now();
    const StepResult r = step_fn_.run(step, stop_signal_received() != 0 || ownership_lost(), &watcher);
    if (r.stopped) break;  // checkpoint below, then stop

    StepRecord rec;
    rec.step = step;
    rec.tokens = tokens_ + step_fn_.tokens_per_step();
    rec.loss = r.loss;
    rec.lr = r.lr;
    rec.grad_norm = r.grad_norm;
    rec.finite = r.finite;
    if (!r.finite) {
      rec.wall_s = wall();
      for (TrainingObserver* o : observers_) o->after_step(rec);
      log.info(fmt::format("step {}: non-finite loss ({}) or gradient norm ({}); trial DIVERGED", step, r.loss,
                           r.grad_norm));
      summary.status = "DIVERGED";
      summary.diverged_step = step;
      step_ = step;
      break;
    }
    double upd2 = 0, par2 = 0;
    const auto values = step_fn_.store().values();
    for (std::size_t i = 0; i < values.size(); ++i) {
      const double d = static_cast<double>(values[i]) - params_before_[i];
      upd2 += d * d;
      par2 += static_cast<double>(values[i]) * values[i];
    }
    step_ = step;
    tokens_ = rec.tokens;
    rec.update_norm = std::sqrt(upd2);
    rec.param_norm = std::sqrt(par2);
    rec.params_before = &params_before_;
    rec.wall_s = wall();
    rec.seconds = seconds_since(step_t0);
    for (TrainingObserver* o : observers_) o->after_step(rec);

    const bool fork_point = std::binary_search(opt_.fork_points.begin(), opt_.fork_points.end(), step);
    paused = step == stop_at;
    if (((cfg_.train.checkpoint_every > 0 && step % cfg_.train.checkpoint_every == 0) || fork_point || paused) &&
        step < total)
      checkpoint(ckpt, step, fork_point);
    if (opt_.hooks.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt_.hooks.step_delay_ms));
  }

  if (summary.status == "COMPLETED" && (step_ < total || paused)) {
    // Stopped by a signal: checkpoint at this step boundary so that a rerun resumes here. Stopped
    // because another worker owns the trial: nothing more is written (every rank learns which).
    std::int64_t lost = ownership_lost() ? 1 : 0;
    comm_.broadcast(std::span<std::int64_t>(&lost, 1), 0);
    if (lost != 0) {
      log.info(fmt::format("stopped at step {}: this worker's lease on the trial was lost; another worker owns it now",
                           step_));
      TrialOutcome outcome;
      outcome.ownership_lost = true;
      outcome.summary.status = "RUNNING";
      outcome.summary.steps_done = step_;
      return outcome;
    }
    if (paused) {
      // Checkpointed at stop_at above (or resumed there): nothing else to write but the event.
      // As after a signal: the (empty) segment opened after the checkpoint is closed.
      if (leader_)
        for (TrainingObserver* o : observers_) o->on_interrupt(step_);
      log.info(fmt::format("paused at step {} (search.halving: waits for its rung's decision)", step_));
      write_attempt("paused", {{"wall_s", wall()}, {"tokens", tokens_}, {"cpu_s", attempt_cpu_s()}});
      comm_.barrier();
      TrialOutcome outcome;
      outcome.paused = true;
      outcome.summary.status = "PAUSED";
      outcome.summary.steps_done = step_;
      outcome.summary.tokens_seen = tokens_;
      outcome.summary.wall_s = wall();
      return outcome;
    }
    const int sig = stop_signal_received();
    const StateDict state = checkpoint_state();  // on every rank, as above
    if (leader_) {
      for (TrainingObserver* o : observers_) o->on_interrupt(step_);
      if (!ckpt.latest_committed() || *ckpt.latest_committed() != step_) ckpt.save(step_, state);
      log.info(fmt::format("stopped by {} at step {}; checkpoint written, rerun the same command to resume",
                           describe_stop_signal(sig), step_));
      write_attempt("interrupted", {{"signal", sig}, {"cpu_s", attempt_cpu_s()}});
    }
    comm_.barrier();
    TrialOutcome outcome;
    outcome.interrupted = true;
    outcome.signal = sig;
    outcome.summary.status = "RUNNING";
    outcome.summary.steps_done = step_;
    return outcome;
  }

  if (const comm::BucketedAllreduce* reducer = step_fn_.reducer(); reducer && reducer->times().steps > 0) {
    const auto& t = reducer->times();
    log.info(
        fmt::format("gradient allreduce ({}, {} bucket(s), {} floats): {:.3f} ms/step inside backward, {:.3f} "
                    "ms/step exposed after backward, over {} step(s)",
                    comm::to_string(reducer->mode()), reducer->buckets().size(), step_fn_.store().size(),
                    1e3 * t.in_backward_s / static_cast<double>(t.steps),
                    1e3 * t.exposed_s / static_cast<double>(t.steps), t.steps));
  }
  if (summary.status == "COMPLETED" && cfg_.train.checkpoint_every > 0) final_checkpoint(ckpt);
  summary.steps_done = step_;
  summary.tokens_seen = tokens_;
  summary.wall_s = wall();
  summary.best_eval_loss = evaluation_->best_loss();
  summary.final_eval_loss =
      summary.status == "DIVERGED" ? std::numeric_limits<double>::infinity() : evaluation_->last_loss();
  if (memory_)
    log.info(
        fmt::format("peak RSS of this process {} against the memory estimate {} per rank (a sweep's process: "
                    "over every trial it ran)",
                    util::format_bytes(peak_rss_bytes()), util::format_bytes(memory_->total())));
  log.info(fmt::format("trial {} {}: final eval loss {:.4f} after {} steps, {:.1f} s", hash_, summary.status,
                       summary.final_eval_loss, step_, summary.wall_s));
  return finish(std::move(summary));
}

}  // namespace

TrialOutcome run_trial(const config::TrialConfig& cfg, comm::Communicator& comm, const TrainerOptions& options) {
  // Before anything is allocated or written.
  const MemoryEstimate memory = estimate_trial_memory(cfg);
  check_trial_memory(memory, comm, options.memory_check);
  Trainer trainer(cfg, comm, options);
  trainer.set_memory_estimate(memory);
  return trainer.run();
}

}  // namespace expt::experiments
