#include "experiments/sweep/runner.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/io/atomic_file.hpp"
#include "core/io/heartbeat.hpp"
#include "core/io/trial_identity.hpp"
#include "core/io/trial_lease.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/sweep/heartbeat_thread.hpp"
#include "experiments/sweep/scheduler.hpp"
#include "experiments/sweep/study_identity.hpp"
#include "experiments/trial/memory_estimate.hpp"
#include "experiments/trial/stop_signal.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

// Live progress is reported at most this often.
constexpr double kProgressIntervalS = 2.0;

}  // namespace

io::DirectoryLock lock_sweep_directory(const fs::path& dir) {
  fs::create_directories(dir);
  return io::DirectoryLock(dir, ".sweep.lock", "`expt sweep`");
}

std::function<void(const std::string&)> abort_job_when_stuck(const std::string& group, const std::string& then) {
  return [group, then](const std::string& what) {
    std::fprintf(
        stderr,
        "expt: watchdog: %s (sweep.collective_timeout_s); a rank of this %s is stuck or dead. Aborting the job "
        "(exit code %d); %s\n",
        what.c_str(), group.c_str(), kExitWatchdog, then.c_str());
    std::fflush(stderr);
    comm::abort_job(kExitWatchdog);
  };
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) s.push_back(' ');
    s.append(argv[i]);
  }
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string BranchRole::to_json() const {
  return nlohmann::json{{"fork_points", fork_points},
                        {"trunk_dir", trunk_dir.string()},
                        {"branch_step", branch_step},
                        {"stop_at", stop_at}}
      .dump();
}

BranchRole BranchRole::from_json(const std::string& line) {
  const nlohmann::json j = nlohmann::json::parse(line);
  BranchRole b;
  b.fork_points = j.value("fork_points", std::vector<std::int64_t>{});
  b.trunk_dir = j.value("trunk_dir", std::string());
  b.branch_step = j.value("branch_step", std::int64_t{0});
  b.stop_at = j.value("stop_at", std::int64_t{0});
  return b;
}

BranchRole branch_role(const Scheduler& sched, const PlannedTrial& t) {
  BranchRole b;
  b.fork_points = t.fork_points;
  b.stop_at = t.stop_at;
  if (!t.trunk_id.empty()) {
    b.trunk_dir = sched.trial_dir(t.trunk_id);
    b.branch_step = t.branch_step;
  }
  return b;
}

std::string branch_note(const PlannedTrial& t) {
  std::string note =
      t.trunk_id.empty() ? std::string() : fmt::format(", branch of {} from step {}", t.trunk_id, t.branch_step);
  if (t.stop_at > 0) note += fmt::format(", stops at step {} for its halving rung", t.stop_at);
  return note;
}

TrialOutcome run_sweep_trial(config::TrialConfig cfg, const fs::path& dir, comm::Communicator& comm,
                             std::function<void(const StepProgress&)> on_step, std::function<bool()> still_owner,
                             const BranchRole& branch) {
  cfg.out = dir.string();
  TrainerOptions options;
  options.fork_points = branch.fork_points;
  options.trunk_dir = branch.trunk_dir;
  options.branch_step = branch.branch_step;
  options.stop_at = branch.stop_at;
  options.progress = ProgressMode::quiet;
  options.on_step = std::move(on_step);
  options.still_owner = std::move(still_owner);
  options.hooks = TrainerHooks::from_environment();
  try {
    return run_trial(cfg, comm, options);
  } catch (const MemoryRefusal& e) {
    // Not transient: every retry on this host would be refused the same way (nothing was written).
    TrialOutcome outcome;
    outcome.summary.status = "FAILED";
    outcome.summary.message = e.what();
    outcome.refused = true;
    return outcome;
  } catch (const std::exception& e) {
    TrialOutcome outcome;
    outcome.summary.status = "FAILED";
    outcome.summary.message = e.what();
    return outcome;
  }
}

std::function<void(const StepProgress&)> rate_limited(std::function<void(const StepProgress&, double)> report) {
  struct State {
    std::chrono::steady_clock::time_point last;
    bool first = true;
    std::int64_t step0 = 0;
    double wall0 = 0;
  };
  auto state = std::make_shared<State>();
  return [report = std::move(report), state](const StepProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (!state->first && std::chrono::duration<double>(now - state->last).count() < kProgressIntervalS) return;
    if (state->first) {
      state->step0 = p.step;
      state->wall0 = p.wall_s;
    }
    state->first = false;
    state->last = now;
    const double step_s =
        p.step > state->step0 ? (p.wall_s - state->wall0) / static_cast<double>(p.step - state->step0) : 0.0;
    report(p, step_s);
  };
}

std::string describe_outcome(const PlannedTrial& t, const io::TrialSummary& s, int signal) {
  if (s.status == "PAUSED")
    return fmt::format("{} paused at step {} ({} seed {} {}): waits for its halving rung's decision", t.id,
                       s.steps_done, t.cell_name, t.seed, t.point);
  if (s.status == "RUNNING")
    return fmt::format("{} stopped by {} at step {} ({} seed {} {}): checkpoint written, rerun to resume", t.id,
                       describe_stop_signal(signal), s.steps_done, t.cell_name, t.seed, t.point);
  std::string detail = s.status == "FAILED" ? s.message : fmt::format("final eval loss {:.4f}", s.final_eval_loss);
  return fmt::format("{} {} ({} seed {} {}): {}", t.id, s.status, t.cell_name, t.seed, t.point, detail);
}

void report_sweep_stop(int signal) {
  if (signal == 0) return;
  std::fprintf(stderr,
               "expt: sweep stopped by %s; the running trials wrote a checkpoint, rerun the same command to resume\n",
               describe_stop_signal(signal).c_str());
}

int sweep_exit_code(const Scheduler& sched, int signal) {
  if (signal != 0) return exit_code_for_signal(signal);
  for (const TrialRecord& r : sched.records())
    if (r.state == "FAILED") return kExitFailed;
  return kExitOk;
}

void refuse_if_workers_alive(const fs::path& dir) {
  const double now = io::lease_clock_now();
  for (const io::HeartbeatRecord& b : io::read_heartbeats(dir))
    if (b.kind == "worker" && io::liveness(b, now) == io::Liveness::running)
      throw std::runtime_error(fmt::format(
          "{} is being worked on by `expt worker` {} (pid {} on {}, last heartbeat {:.0f} s ago); `expt sweep` "
          "takes no leases and would train their trials again. Run more workers instead, or stop them (SIGTERM) "
          "first",
          dir.string(), b.id, b.pid, b.host, now - b.beat_s));
}

void prepare_sweep_directory(const Study& study, const Planner& planner, const fs::path& dir) {
  fs::create_directories(dir / "trials");
  for (const std::string& line : io::adopt_legacy_trial_directories(dir / "trials"))
    std::printf("[sweep] %s\n", line.c_str());
  io::write_file_atomic(dir / "sweep.yaml", study.text);
  io::write_file_atomic(dir / "sweep.resolved.yaml", resolved_study_yaml(planner));
}

int run_sweep_alone(const Study& study, const Planner& planner, const fs::path& out, bool add_to_existing,
                    const std::string& command) {
  if (study.ranks_per_trial != 1) {
    std::fprintf(stderr,
                 "expt: sweep.ranks_per_trial is %d; launch `mpirun -np %d expt sweep ...` (1 coordinator + groups "
                 "of %d)\n",
                 study.ranks_per_trial, 1 + study.ranks_per_trial, study.ranks_per_trial);
    return kExitUsage;
  }
  const io::DirectoryLock lock = lock_sweep_directory(out);
  const fs::path dir = claim_sweep_directory(study, planner, out, add_to_existing);
  refuse_if_workers_alive(dir);
  prepare_sweep_directory(study, planner, dir);
  install_stop_signal_handlers();
  HeartbeatThread heartbeat(dir, "sweep", io::WorkerIdentity::of_this_process(), command, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  Scheduler sched(planner, dir);
  comm::LocalCommunicator comm;
  int signal = 0;
  sched.write_status(0);
  sched.write_index();
  while (auto t = sched.next(0)) {
    std::printf("[sweep] start %s (%s seed %llu %s%s)\n", t->id.c_str(), t->cell_name.c_str(),
                static_cast<unsigned long long>(t->seed), t->point.c_str(), branch_note(*t).c_str());
    std::fflush(stdout);
    sched.write_status(seconds_since(t0));
    const std::string id = t->id;
    heartbeat.start_trial(id, std::nullopt);
    const TrialOutcome outcome = run_sweep_trial(t->config, sched.trial_dir(t->id), comm,
                                                 rate_limited([&](const StepProgress& p, double step_s) {
                                                   sched.progress(id, p.step, p.loss, p.tokens_per_s, step_s);
                                                   heartbeat.progress(p.step, p.loss, step_s);
                                                   sched.write_status(seconds_since(t0));
                                                 }),
                                                 {}, branch_role(sched, *t));
    heartbeat.end_trial();
    sched.finished(t->id, outcome.summary, outcome.interrupted, !outcome.refused);
    std::printf("[sweep] %s\n", describe_outcome(*t, outcome.summary, outcome.signal).c_str());
    std::fflush(stdout);
    sched.write_status(seconds_since(t0));
    sched.write_index();
    if (outcome.interrupted) {
      signal = outcome.signal;
      break;
    }
  }
  sched.write_status(seconds_since(t0));
  sched.write_index();
  std::fputs(sched.summary_text().c_str(), stdout);
  report_sweep_stop(signal);
  heartbeat.finish(signal != 0 ? "stopped" : "finished");
  return sweep_exit_code(sched, signal);
}

}  // namespace expt::experiments
