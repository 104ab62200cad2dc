// An MPI sweep: world rank 0 hands out trials (coordinate_sweep), ranks 1.. train them in groups
// (work_in_sweep_group). The messages between them go through core/comm/sweep_channel.hpp.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "core/comm/sweep_channel.hpp"
#include "core/comm/watchdog.hpp"
#include "core/config/loader.hpp"
#include "core/io/trial_directory.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/sweep/heartbeat_thread.hpp"
#include "experiments/sweep/runner.hpp"
#include "experiments/sweep/scheduler.hpp"
#include "experiments/sweep/study_identity.hpp"
#include "experiments/trial/stop_signal.hpp"
#include "experiments/trial/trainer.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

io::TrialSummary summary_of(const comm::TrialResultMessage& r) {
  io::TrialSummary s;
  s.status = r.status;
  s.final_eval_loss = r.final_eval_loss;
  s.steps_done = r.steps_done;
  s.tokens_seen = r.tokens_seen;
  s.wall_s = r.wall_s;
  s.message = r.message;
  return s;
}

}  // namespace

int coordinate_sweep(const Study& study, const Planner& planner, const fs::path& out, bool add_to_existing,
                     int world_size, const std::string& command) {
  const int group_size = study.ranks_per_trial;
  const int n_groups = (world_size - 1) / group_size;
  comm::SweepCoordinatorChannel channel;
  std::optional<io::DirectoryLock> lock;
  fs::path dir;
  try {
    lock.emplace(lock_sweep_directory(out));
    dir = claim_sweep_directory(study, planner, out, add_to_existing);
    refuse_if_workers_alive(dir);
    prepare_sweep_directory(study, planner, dir);
  } catch (const StudyMismatch& e) {
    std::fprintf(stderr, "expt: %s\n", e.what());
    comm::abort_job(kExitUsage);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: %s\n", e.what());
    comm::abort_job(kExitFailed);
  }
  install_stop_signal_handlers();
  HeartbeatThread heartbeat(dir, "sweep", io::WorkerIdentity::of_this_process(), command, nullptr);
  const auto t0 = std::chrono::steady_clock::now();
  Scheduler sched(planner, dir);
  sched.write_status(0);
  sched.write_index();
  std::printf("[sweep] %s: %d group(s) of %d rank(s), %zu trial(s) planned so far\n", study.name.c_str(), n_groups,
              group_size, sched.records().size());
  std::fflush(stdout);

  std::map<int, PlannedTrial> assigned;  // leader world rank -> its trial
  std::vector<int> waiting;              // leaders that asked for work and got none yet
  int shut_down = 0, signal = 0;
  auto last_status = std::chrono::steady_clock::now();
  // status.json, sweep.h5 and state.h5 (with their fsyncs) are rewritten after a result only once
  // no message is waiting: the group that reported it asks for its next trial at once, and gets it
  // without waiting on the coordinator's disk writes. Nothing is lost by the delay: the trial's
  // own result.h5 is already durable, and a restart rebuilds everything from the trial folders.
  bool files_stale = false;
  // Nothing here blocks: the loop polls. A rank that dies makes the launcher end the whole job
  // (MPI's default error handler); a trial that throws is reported by its leader as FAILED.
  while (shut_down < n_groups) {
    if (const auto msg = channel.poll()) {
      using Kind = comm::SweepCoordinatorChannel::Message::Kind;
      if (msg->kind == Kind::request) {
        waiting.push_back(msg->leader);
      } else if (msg->kind == Kind::progress) {
        // A group reports the trial it runs; a report never arrives after that trial's result.
        const auto it = assigned.find(msg->leader);
        if (it != assigned.end())
          sched.progress(it->second.id, msg->progress.step, msg->progress.loss, msg->progress.tokens_per_s,
                         msg->progress.step_s);
      } else {
        const io::TrialSummary s = summary_of(msg->result);
        const PlannedTrial t = assigned.at(msg->leader);
        assigned.erase(msg->leader);
        sched.finished(t.id, s, msg->result.interrupted, !msg->result.refused);
        if (msg->result.interrupted) signal = msg->result.signal;
        std::printf("[sweep] %s\n", describe_outcome(t, s, msg->result.signal).c_str());
        std::fflush(stdout);
        files_stale = true;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (signal == 0) signal = stop_signal_received();
    for (auto it = waiting.begin(); it != waiting.end();) {
      const int leader = *it;
      std::optional<PlannedTrial> t;
      if (signal == 0) t = sched.next((leader - 1) / group_size);
      if (t) {
        config::TrialConfig cfg = t->config;
        cfg.out = sched.trial_dir(t->id).string();
        channel.assign(leader,
                       comm::TrialAssignment{t->id, config::to_canonical_yaml(cfg), branch_role(sched, *t).to_json()});
        std::printf("[sweep] start %s on group %d (%s seed %llu %s%s)\n", t->id.c_str(), (leader - 1) / group_size,
                    t->cell_name.c_str(), static_cast<unsigned long long>(t->seed), t->point.c_str(),
                    branch_note(*t).c_str());
        std::fflush(stdout);
        assigned.emplace(leader, *t);
        it = waiting.erase(it);
      } else if (signal != 0 || sched.all_done()) {
        channel.shut_down(leader);
        ++shut_down;
        it = waiting.erase(it);
      } else {
        ++it;  // a coordinate-descent round waits on trials still running
      }
    }
    if (files_stale && !channel.message_waiting()) {
      sched.write_status(seconds_since(t0));
      sched.write_index();
      files_stale = false;
      last_status = std::chrono::steady_clock::now();
    }
    if (seconds_since(last_status) > 2.0) {
      sched.write_status(seconds_since(t0));
      last_status = std::chrono::steady_clock::now();
    }
  }
  sched.write_status(seconds_since(t0));
  sched.write_index();
  std::fputs(sched.summary_text().c_str(), stdout);
  std::fflush(stdout);
  report_sweep_stop(signal);
  heartbeat.finish(signal != 0 ? "stopped" : "finished");
  return sweep_exit_code(sched, signal);
}

int work_in_sweep_group(int world_rank, int group_size, double collective_timeout_s) {
  comm::SweepGroupChannel channel(world_rank, group_size);
  // Every collective of a trial runs under the watchdog: a rank stuck longer than the timeout
  // ends the whole job (rerun to resume) instead of hanging it (docs/reliability.md).
  comm::Watchdog watchdog(collective_timeout_s, abort_job_when_stuck("group", "rerun the same command to resume"));
  comm::WatchedCommunicator comm(channel.group(), watchdog,
                                 fmt::format("rank {} (world rank {})", channel.group().rank(), world_rank));
  const bool leader = channel.leader();
  install_stop_signal_handlers();
  int signal = 0;
  while (const auto trial = channel.next_trial()) {
    comm.set_label(fmt::format("rank {} of trial {} (world rank {})", comm.rank(), trial->id, world_rank));
    TrialOutcome outcome;
    try {
      const config::TrialConfig cfg = config::parse_trial_config(trial->config_yaml, "trial " + trial->id);
      // The leader reports progress to the coordinator every few seconds.
      std::function<void(const StepProgress&)> report;
      if (leader)
        report = rate_limited([&channel](const StepProgress& p, double step_s) {
          channel.report_progress(comm::TrialProgressMessage{p.step, p.loss, p.tokens_per_s, step_s});
        });
      outcome = run_sweep_trial(cfg, cfg.out, comm, std::move(report), {},
                                leader ? BranchRole::from_json(trial->branch) : BranchRole{});
    } catch (const std::exception& e) {
      // The coordinator sent a config that does not parse: a bug, not a trial failure.
      std::fprintf(stderr, "expt: rank %d: cannot read the config of trial %s: %s\n", world_rank, trial->id.c_str(),
                   e.what());
      comm::abort_job(kExitFailed);
    }
    if (outcome.interrupted) signal = outcome.signal;
    if (leader) {
      const io::TrialSummary& s = outcome.summary;
      channel.report_result(comm::TrialResultMessage{s.status, s.final_eval_loss, s.steps_done, s.tokens_seen, s.wall_s,
                                                     s.message, outcome.interrupted, outcome.signal, outcome.refused});
    }
  }
  return signal != 0 ? exit_code_for_signal(signal) : kExitOk;
}

}  // namespace expt::experiments
