#include "experiments/sweep/runner.hpp"

#include <fmt/format.h>
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/comm/mpi_communicator.hpp"
#include "core/comm/watchdog.hpp"
#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/trial_directory.hpp"
#include "core/io/trial_identity.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/sweep/scheduler.hpp"
#include "experiments/trial/trainer.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

std::atomic<int> g_coordinator_signal{0};
extern "C" void on_coordinator_signal(int sig) { g_coordinator_signal.store(sig); }

// An exclusive lock on <dir>/.sweep.lock: two sweeps on one directory would hand out trials twice.
io::DirectoryLock lock_sweep_directory(const fs::path& dir) {
  fs::create_directories(dir);
  return io::DirectoryLock(dir, ".sweep.lock", "`expt sweep`");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs one trial of the sweep on `comm`; what run_trial throws (a directory held by another trial
// or locked by another process) ends only this trial, as FAILED.
TrialOutcome run_sweep_trial(config::TrialConfig cfg, const fs::path& dir, comm::Communicator& comm,
                             std::function<void(const StepProgress&)> on_step) {
  cfg.out = dir.string();
  TrainerOptions options;
  options.progress = ProgressMode::quiet;
  options.on_step = std::move(on_step);
  options.hooks = TrainerHooks::from_environment();
  try {
    return run_trial(cfg, comm, options);
  } catch (const std::exception& e) {
    TrialOutcome outcome;
    outcome.summary.status = "FAILED";
    outcome.summary.message = e.what();
    return outcome;
  }
}

// Live progress is reported at most this often (status.json is rewritten as often).
constexpr double kProgressIntervalS = 2.0;

// Calls `report` with a trial's step at most every kProgressIntervalS seconds (and at its first
// step, so a short trial shows up too).
std::function<void(const StepProgress&)> rate_limited(std::function<void(const StepProgress&)> report) {
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  auto first = std::make_shared<bool>(true);
  return [report = std::move(report), last, first](const StepProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (!*first && std::chrono::duration<double>(now - *last).count() < kProgressIntervalS) return;
    *first = false;
    *last = now;
    report(p);
  };
}

std::string describe_outcome(const PlannedTrial& t, const io::TrialSummary& s) {
  if (s.status == "RUNNING")
    return fmt::format("{} interrupted at step {} ({} seed {} {}): checkpoint written, rerun to resume", t.id,
                       s.steps_done, t.cell_name, t.seed, t.point);
  std::string detail = s.status == "FAILED" ? s.message : fmt::format("final eval loss {:.4f}", s.final_eval_loss);
  return fmt::format("{} {} ({} seed {} {}): {}", t.id, s.status, t.cell_name, t.seed, t.point, detail);
}

// Exit code of a sweep: 128+signal when stopped, 1 when a trial failed for good, else 0.
int sweep_exit_code(const Scheduler& sched, int signal) {
  if (signal != 0) return exit_code_for_signal(signal);
  for (const TrialRecord& r : sched.records())
    if (r.state == "FAILED") return kExitFailed;
  return kExitOk;
}

void prepare_directory(const Study& study, const Planner& planner, const fs::path& dir) {
  fs::create_directories(dir / "trials");
  for (const std::string& line : io::adopt_legacy_trial_directories(dir / "trials"))
    std::printf("[sweep] %s\n", line.c_str());
  io::write_file_atomic(dir / "sweep.yaml", study.text);
  io::write_file_atomic(dir / "sweep.resolved.yaml", resolved_study_yaml(planner));
}

// ---- MPI: world rank 0 coordinates, ranks 1.. form groups of ranks_per_trial ----

constexpr int kTagRequest = 1;   // leader -> 0: ready for a trial (empty)
constexpr int kTagAssign = 2;    // 0 -> leader: "<id>\n<canonical trial yaml>"
constexpr int kTagShutdown = 3;  // 0 -> leader: no more work (empty)
constexpr int kTagResult = 4;    // leader -> 0: JSON of the outcome
constexpr int kTagProgress = 5;  // leader -> 0: JSON {step, loss, tokens_per_s} of the running trial

std::string receive_string(int source, int tag, MPI_Comm comm, MPI_Status* status_out) {
  MPI_Status status;
  MPI_Probe(source, tag, comm, &status);
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string s(static_cast<std::size_t>(count), '\0');
  MPI_Recv(s.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, comm, MPI_STATUS_IGNORE);
  if (status_out != nullptr) *status_out = status;
  return s;
}

void send_string(const std::string& s, int dest, int tag) {
  MPI_Send(s.data(), static_cast<int>(s.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD);
}

}  // namespace

int run_sweep_alone(const Study& study, const Planner& planner, const fs::path& dir) {
  if (study.ranks_per_trial != 1) {
    std::fprintf(stderr,
                 "expt: sweep.ranks_per_trial is %d; launch `mpirun -np %d expt sweep ...` (1 coordinator + groups "
                 "of %d)\n",
                 study.ranks_per_trial, 1 + study.ranks_per_trial, study.ranks_per_trial);
    return kExitUsage;
  }
  const io::DirectoryLock lock = lock_sweep_directory(dir);
  prepare_directory(study, planner, dir);
  install_stop_signal_handlers();
  const auto t0 = std::chrono::steady_clock::now();
  Scheduler sched(planner, dir);
  comm::LocalCommunicator comm;
  int signal = 0;
  sched.write_status(0);
  sched.write_index();
  while (auto t = sched.next(0)) {
    std::printf("[sweep] start %s (%s seed %llu %s)\n", t->id.c_str(), t->cell_name.c_str(),
                static_cast<unsigned long long>(t->seed), t->point.c_str());
    std::fflush(stdout);
    sched.write_status(seconds_since(t0));
    const std::string id = t->id;
    const TrialOutcome outcome =
        run_sweep_trial(t->config, sched.trial_dir(t->id), comm, rate_limited([&](const StepProgress& p) {
                          sched.progress(id, p.step, p.loss, p.tokens_per_s);
                          sched.write_status(seconds_since(t0));
                        }));
    sched.finished(t->id, outcome.summary, outcome.interrupted);
    std::printf("[sweep] %s\n", describe_outcome(*t, outcome.summary).c_str());
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
  if (signal != 0) std::fprintf(stderr, "expt: sweep stopped by signal %d; run the same command to resume\n", signal);
  return sweep_exit_code(sched, signal);
}

int coordinate_sweep(const Study& study, const Planner& planner, const fs::path& dir, int world_size) {
  const int group_size = study.ranks_per_trial;
  const int n_groups = (world_size - 1) / group_size;
  // The coordinator takes no part in the split's groups (work_in_sweep_group's MPI_Comm_split).
  MPI_Comm none;
  MPI_Comm_split(MPI_COMM_WORLD, MPI_UNDEFINED, 0, &none);
  std::optional<io::DirectoryLock> lock;
  try {
    lock.emplace(lock_sweep_directory(dir));
    prepare_directory(study, planner, dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitFailed);
  }
  std::signal(SIGINT, on_coordinator_signal);
  std::signal(SIGTERM, on_coordinator_signal);
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
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status);
    if (flag) {
      const std::string msg = receive_string(status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, nullptr);
      if (status.MPI_TAG == kTagRequest) {
        waiting.push_back(status.MPI_SOURCE);
      } else if (status.MPI_TAG == kTagProgress) {
        // A group reports the trial it runs; MPI keeps one sender's messages in order, so a
        // report never arrives after that trial's result.
        const auto it = assigned.find(status.MPI_SOURCE);
        if (it != assigned.end()) {
          const auto j = nlohmann::json::parse(msg);
          sched.progress(it->second.id, j.at("step").get<std::int64_t>(),
                         j.at("loss").is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at("loss").get<double>(),
                         j.at("tokens_per_s").get<double>());
        }
      } else if (status.MPI_TAG == kTagResult) {
        const auto j = nlohmann::json::parse(msg);
        io::TrialSummary s;
        s.status = j.at("status").get<std::string>();
        s.final_eval_loss = j.at("final_eval_loss").is_null() ? std::numeric_limits<double>::infinity()
                                                              : j.at("final_eval_loss").get<double>();
        s.steps_done = j.at("steps_done").get<std::int64_t>();
        s.tokens_seen = j.at("tokens_seen").get<std::int64_t>();
        s.wall_s = j.at("wall_s").get<double>();
        s.message = j.at("message").get<std::string>();
        const bool interrupted = j.at("interrupted").get<bool>();
        const PlannedTrial t = assigned.at(status.MPI_SOURCE);
        assigned.erase(status.MPI_SOURCE);
        sched.finished(t.id, s, interrupted);
        if (interrupted) signal = j.at("signal").get<int>();
        std::printf("[sweep] %s\n", describe_outcome(t, s).c_str());
        std::fflush(stdout);
        files_stale = true;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (signal == 0) signal = g_coordinator_signal.load();
    for (auto it = waiting.begin(); it != waiting.end();) {
      const int leader = *it;
      std::optional<PlannedTrial> t;
      if (signal == 0) t = sched.next((leader - 1) / group_size);
      if (t) {
        config::TrialConfig cfg = t->config;
        cfg.out = (dir / "trials" / t->id).string();
        send_string(t->id + "\n" + config::to_canonical_yaml(cfg), leader, kTagAssign);
        std::printf("[sweep] start %s on group %d (%s seed %llu %s)\n", t->id.c_str(), (leader - 1) / group_size,
                    t->cell_name.c_str(), static_cast<unsigned long long>(t->seed), t->point.c_str());
        std::fflush(stdout);
        assigned.emplace(leader, *t);
        it = waiting.erase(it);
      } else if (signal != 0 || sched.all_done()) {
        send_string("", leader, kTagShutdown);
        ++shut_down;
        it = waiting.erase(it);
      } else {
        ++it;  // a coordinate-descent round waits on trials still running
      }
    }
    if (files_stale) {
      int more = 0;
      MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &more, MPI_STATUS_IGNORE);
      if (!more) {
        sched.write_status(seconds_since(t0));
        sched.write_index();
        files_stale = false;
        last_status = std::chrono::steady_clock::now();
      }
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
  if (signal != 0) std::fprintf(stderr, "expt: sweep stopped by signal %d; run the same command to resume\n", signal);
  return sweep_exit_code(sched, signal);
}

int work_in_sweep_group(int world_rank, int group_size, double collective_timeout_s) {
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, (world_rank - 1) / group_size, world_rank, &group);
  comm::MpiCommunicator mpi(group);
  // Every collective of a trial runs under the watchdog: a rank stuck longer than the timeout
  // ends the whole job (rerun to resume) instead of hanging it (docs/reliability.md).
  comm::Watchdog watchdog(collective_timeout_s, [](const std::string& what) {
    std::fprintf(stderr,
                 "expt: watchdog: %s (sweep.collective_timeout_s); a rank of this group is stuck or dead. Aborting "
                 "the job (exit code %d); rerun the same command to resume\n",
                 what.c_str(), kExitWatchdog);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, kExitWatchdog);
  });
  comm::WatchedCommunicator comm(mpi, watchdog, fmt::format("rank {} (world rank {})", mpi.rank(), world_rank));
  const bool leader = comm.rank() == 0;
  install_stop_signal_handlers();
  int signal = 0;
  for (;;) {
    std::string msg;
    std::int64_t header[2] = {0, 0};  // tag, length
    if (leader) {
      send_string("", 0, kTagRequest);
      MPI_Status status;
      msg = receive_string(0, MPI_ANY_TAG, MPI_COMM_WORLD, &status);
      header[0] = status.MPI_TAG;
      header[1] = static_cast<std::int64_t>(msg.size());
    }
    MPI_Bcast(header, 2, MPI_INT64_T, 0, group);
    if (header[0] == kTagShutdown) break;
    msg.resize(static_cast<std::size_t>(header[1]));
    MPI_Bcast(msg.data(), static_cast<int>(header[1]), MPI_CHAR, 0, group);
    const std::size_t nl = msg.find('\n');
    const std::string id = msg.substr(0, nl);
    comm.set_label(fmt::format("rank {} of trial {} (world rank {})", comm.rank(), id, world_rank));
    TrialOutcome outcome;
    try {
      const config::TrialConfig cfg = config::parse_trial_config(msg.substr(nl + 1), "trial " + id);
      // The leader reports progress to the coordinator every few seconds. The message is small
      // (eager protocol), so MPI_Send returns at once and does not wait for the coordinator.
      std::function<void(const StepProgress&)> report;
      if (leader)
        report = rate_limited([](const StepProgress& p) {
          const nlohmann::json j = {{"step", p.step},
                                    {"loss", std::isfinite(p.loss) ? nlohmann::json(p.loss) : nullptr},
                                    {"tokens_per_s", p.tokens_per_s}};
          send_string(j.dump(), 0, kTagProgress);
        });
      outcome = run_sweep_trial(cfg, cfg.out, comm, std::move(report));
    } catch (const std::exception& e) {
      // The coordinator sent a config that does not parse: a bug, not a trial failure.
      std::fprintf(stderr, "expt: rank %d: cannot read the config of trial %s: %s\n", world_rank, id.c_str(), e.what());
      MPI_Abort(MPI_COMM_WORLD, kExitFailed);
    }
    if (outcome.interrupted) signal = outcome.signal;
    if (leader) {
      const io::TrialSummary& s = outcome.summary;
      const nlohmann::json j = {
          {"status", s.status},
          {"final_eval_loss", std::isfinite(s.final_eval_loss) ? nlohmann::json(s.final_eval_loss) : nullptr},
          {"steps_done", s.steps_done},
          {"tokens_seen", s.tokens_seen},
          {"wall_s", s.wall_s},
          {"message", s.message},
          {"interrupted", outcome.interrupted},
          {"signal", outcome.signal}};
      send_string(j.dump(), 0, kTagResult);
    }
  }
  MPI_Comm_free(&group);
  return signal != 0 ? exit_code_for_signal(signal) : kExitOk;
}

}  // namespace expt::experiments
