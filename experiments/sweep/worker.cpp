// `expt worker`: coordinator-free workers on a shared sweep directory (docs/distributed.md
// "Workers and leases"). Each round of the loop rebuilds the sweep's state from the directory (the
// Scheduler, so coordinate descent's next round is planned by whichever worker finds the previous
// one finished), then takes the lease (core/io/trial_lease.hpp) of the most expensive pending trial
// that nobody holds, trains it while the heartbeat thread renews the lease, and releases it.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "core/comm/watchdog.hpp"
#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/trial_lease.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/sweep/heartbeat_thread.hpp"
#include "experiments/sweep/runner.hpp"
#include "experiments/sweep/scheduler.hpp"
#include "experiments/sweep/study_identity.hpp"
#include "experiments/trial/stop_signal.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

// How long a worker waits when every pending trial is leased by others (or a coordinate-descent
// round waits on them) before it looks again.
constexpr double kIdlePollS = 0.5;

constexpr const char* kWorkerStuckAdvice = "its lease expires and another worker resumes the trial";

// Test-only (docs/reliability.md): EXPT_TEST_NO_LEASES=1 claims trials without a lease, and the
// trial directory's lock is not a guard either, so a double run happens; the lease torture test's
// negative control shows its checker catches it.
bool leases_disabled() {
  const char* v = std::getenv("EXPT_TEST_NO_LEASES");
  return v != nullptr && std::string(v) == "1";
}

// The directory's .sweep.lock, held only while the study is claimed and the directory prepared
// (several workers may start at once); an `expt sweep` holds it for its whole run, and a worker
// gives up after a while with that error.
io::DirectoryLock lock_briefly(const fs::path& dir) {
  for (int i = 0;; ++i) {
    try {
      return lock_sweep_directory(dir);
    } catch (const std::runtime_error&) {
      if (i >= 300) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void sleep_unless_stopped(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until && stop_signal_received() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

// Appends one JSON line to EXPT_TEST_CLAIM_LOG (test-only evidence of who held which trial when).
void claim_evidence(const std::string& event, const std::string& trial, const io::WorkerIdentity& me) {
  const char* path = std::getenv("EXPT_TEST_CLAIM_LOG");
  if (path == nullptr) return;
  io::append_line_durable(
      path, fmt::format(R"({{"event":"{}","trial":"{}","pid":{},"t":{:.6f}}})", event, trial, me.pid,
                        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()));
}

// Whether another process holds the lock of an existing trial directory (TrialDirectory::lock).
bool trial_directory_locked(const fs::path& trial_dir) {
  if (!fs::exists(trial_dir / ".lock")) return false;
  try {
    const io::DirectoryLock probe = io::TrialDirectory(trial_dir).lock();
    return false;
  } catch (const std::runtime_error&) {
    return true;
  }
}

}  // namespace

int run_worker(const Study& study, const Planner& planner, const fs::path& out, bool add_to_existing,
               const std::string& command, comm::WorkerChannel* channel) {
  if (study.ranks_per_trial != (channel != nullptr ? channel->world().size() : 1)) {
    std::fprintf(stderr,
                 "expt: sweep.ranks_per_trial is %d but this worker has %d rank(s); launch `mpirun -np %d expt worker "
                 "...` (or `srun --mpi=pmix -n %d`)\n",
                 study.ranks_per_trial, channel != nullptr ? channel->world().size() : 1, study.ranks_per_trial,
                 study.ranks_per_trial);
    if (channel != nullptr) channel->share(std::nullopt);
    return kExitUsage;
  }
  fs::path dir;
  {
    const io::DirectoryLock lock = lock_briefly(out);
    dir = claim_sweep_directory(study, planner, out, add_to_existing);
    prepare_sweep_directory(study, planner, dir);
  }
  install_stop_signal_handlers();
  const io::WorkerIdentity me = io::WorkerIdentity::of_this_process();
  io::TrialLeases leases(out / "leases", me, io::LeaseSettings::from_environment());
  HeartbeatThread heartbeat(dir, "worker", me, command, &leases);
  const bool no_leases = leases_disabled();
  const std::string tmp_suffix = ".tmp." + me.id;
  // Rank 0 trains under the watchdog too, as every rank of an `expt sweep` group does.
  comm::LocalCommunicator local;
  std::optional<comm::Watchdog> watchdog;
  std::optional<comm::WatchedCommunicator> watched;
  if (channel != nullptr) {
    watchdog.emplace(study.collective_timeout_s, abort_job_when_stuck("worker", kWorkerStuckAdvice));
    watched.emplace(channel->world(), *watchdog, "worker rank 0");
  }
  comm::Communicator& comm = watched ? static_cast<comm::Communicator&>(*watched) : local;
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("[worker %s] %s: %d rank(s), leases in %s (ttl %.0f s)\n", me.id.c_str(), study.name.c_str(), comm.size(),
              (out / "leases").string().c_str(), leases.settings().ttl_s);
  std::fflush(stdout);

  int signal = 0;
  int trained = 0;
  std::optional<Scheduler> sched;
  // Trials this worker's host refused (the memory pre-flight): FAILED for good in this worker, which
  // does not try them again; nothing of them is on disk, so each rebuilt Scheduler is told again.
  std::map<std::string, io::TrialSummary> refused_here;
  // Trials whose directory lock was held when this worker had their lease (said once each).
  std::set<std::string> locked_said;
  for (;;) {
    signal = stop_signal_received();
    if (signal != 0) break;
    sched.emplace(planner, dir, tmp_suffix);
    for (const auto& [id, summary] : refused_here) sched->finished(id, summary, false, /*retryable=*/false);
    if (sched->all_done()) break;
    std::optional<PlannedTrial> trial;
    std::optional<io::HeldLease> lease;
    while (auto t = sched->next(0)) {
      if (no_leases) {
        trial = t;
        break;
      }
      if ((lease = leases.try_acquire(t->id))) {
        // A process that held the trial before, lost its lease while stopped or hung and has not
        // yet noticed, still holds the trial directory's lock (on this host, or on any host where
        // the filesystem's locks work): it will stop at its next step boundary without writing.
        // Until then the trial is left to it; running it now would only fail on the lock.
        if (trial_directory_locked(sched->trial_dir(t->id))) {
          if (locked_said.insert(t->id).second) {
            std::printf(
                "[worker] %s: lease taken over, but its directory is still locked by the process that "
                "lost it (stopped or hung); trying it again later\n",
                t->id.c_str());
            std::fflush(stdout);
          }
          leases.release(*lease);
          lease.reset();
          sched->running_elsewhere(t->id);
          continue;
        }
        trial = t;
        break;
      }
      sched->running_elsewhere(t->id);
    }
    if (trial && !no_leases && sched->done_on_disk(trial->id)) {
      // Finished by another worker since this one read the directory.
      leases.release(*lease);
      continue;
    }
    if (!trial) {
      sleep_unless_stopped(kIdlePollS);
      continue;
    }
    const std::string id = trial->id;
    claim_evidence("claim", id, me);
    std::printf("[worker] start %s (%s seed %llu %s%s)\n", id.c_str(), trial->cell_name.c_str(),
                static_cast<unsigned long long>(trial->seed), trial->point.c_str(), branch_note(*trial).c_str());
    std::fflush(stdout);
    heartbeat.start_trial(id, lease);
    sched->write_status(seconds_since(t0));
    config::TrialConfig cfg = trial->config;
    cfg.out = sched->trial_dir(id).string();
    if (channel != nullptr) channel->share(comm::TrialAssignment{id, config::to_canonical_yaml(cfg)});
    const TrialOutcome outcome = run_sweep_trial(
        cfg, cfg.out, comm, rate_limited([&](const StepProgress& p, double step_s) {
          sched->progress(id, p.step, p.loss, p.tokens_per_s, step_s);
          heartbeat.progress(p.step, p.loss, step_s);
          sched->write_status(seconds_since(t0));
        }),
        [&heartbeat] { return heartbeat.lease_held(); }, branch_role(*sched, *trial));
    const std::optional<io::HeldLease> still = heartbeat.end_trial();
    claim_evidence(outcome.ownership_lost ? "lost" : "release", id, me);
    if (outcome.ownership_lost) {
      std::printf("[worker] %s: lease lost at step %lld, another worker owns the trial now; nothing committed\n",
                  id.c_str(), static_cast<long long>(outcome.summary.steps_done));
      std::fflush(stdout);
      continue;
    }
    if (still) leases.release(*still);
    if (outcome.refused) refused_here[id] = outcome.summary;
    sched->finished(id, outcome.summary, outcome.interrupted, !outcome.refused);
    // As `expt sweep` does after each trial: `expt analyze` reads a running study from sweep.h5.
    sched->write_status(seconds_since(t0));
    sched->write_index();
    std::printf("[worker] %s\n", describe_outcome(*trial, outcome.summary, outcome.signal).c_str());
    std::fflush(stdout);
    ++trained;
    if (outcome.interrupted) {
      signal = outcome.signal;
      break;
    }
  }
  if (channel != nullptr) channel->share(std::nullopt);
  // The final view: every worker that finds nothing runnable writes the same sweep.h5.
  Scheduler final_view(planner, dir, tmp_suffix);
  for (const auto& [id, summary] : refused_here) final_view.finished(id, summary, false, /*retryable=*/false);
  for (const io::LeaseRecord& l : leases.all())
    if (!leases.takeable(l)) final_view.running_elsewhere(l.trial);
  final_view.write_status(seconds_since(t0));
  final_view.write_index();
  std::printf("[worker %s] %d trial(s) trained; ", me.id.c_str(), trained);
  std::fputs(final_view.summary_text().c_str(), stdout);
  std::fflush(stdout);
  if (signal != 0)
    std::fprintf(stderr, "expt: worker stopped by %s; its trial wrote a checkpoint and released its lease, %s\n",
                 describe_stop_signal(signal).c_str(), "run a worker again to resume");
  heartbeat.finish(signal != 0 ? "stopped" : "finished");
  return sweep_exit_code(final_view, signal);
}

int follow_worker(comm::WorkerChannel& channel, double collective_timeout_s) {
  // Every collective of a trial runs under the watchdog, as in an `expt sweep` group.
  comm::Watchdog watchdog(collective_timeout_s, abort_job_when_stuck("worker", kWorkerStuckAdvice));
  comm::WatchedCommunicator comm(channel.world(), watchdog, fmt::format("worker rank {}", channel.world().rank()));
  install_stop_signal_handlers();
  int signal = 0;
  while (const auto trial = channel.share(std::nullopt)) {
    const config::TrialConfig cfg = config::parse_trial_config(trial->config_yaml, "trial " + trial->id);
    const TrialOutcome outcome = run_sweep_trial(cfg, cfg.out, comm, {});
    if (outcome.interrupted) signal = outcome.signal;
  }
  return signal != 0 ? exit_code_for_signal(signal) : kExitOk;
}

}  // namespace expt::experiments
