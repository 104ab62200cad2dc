#include "experiments/sweep.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <mpi.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/comm/mpi_communicator.hpp"
#include "core/comm/watchdog.hpp"
#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/checkpoint.hpp"
#include "core/io/hdf5.hpp"
#include "core/io/sweep_index.hpp"
#include "experiments/cli.hpp"
#include "experiments/sweep_commands.hpp"
#include "experiments/trainer.hpp"
#include "experiments/trial_identity.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

bool finite_loss(const io::TrialSummary& s) { return s.status == "COMPLETED" && std::isfinite(s.final_eval_loss); }

double store_loss(const io::TrialSummary& s) {
  return finite_loss(s) ? s.final_eval_loss : std::numeric_limits<double>::infinity();
}

// Names in <trial_dir>/quarantine (damaged files moved aside by the trainer), sorted.
std::vector<std::string> quarantined_files(const fs::path& trial_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(trial_dir / "quarantine", ec)) return names;
  for (const auto& e : fs::directory_iterator(trial_dir / "quarantine", ec))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string indent(const std::string& text, int spaces) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out += std::string(static_cast<std::size_t>(spaces), ' ') + line + "\n";
  return out;
}

}  // namespace

int count_attempts(const fs::path& trial_dir) {
  std::ifstream in(trial_dir / "attempts.jsonl");
  std::string line;
  int starts = 0;
  while (std::getline(in, line))
    if (line.find("\"event\":\"start\"") != std::string::npos) ++starts;
  return starts;
}

// ---------------------------------------------------------------------------------------------
// Scheduler

Scheduler::Scheduler(const Planner& planner, fs::path dir) : planner_(planner), dir_(std::move(dir)) {
  if (planner_.study().strategy == Strategy::coordinate_descent) {
    for (std::size_t c = 0; c < planner_.cells().size(); ++c) plan_cell(c);
  } else {
    for (const PlannedTrial& t : planner_.static_trials()) add(t);
  }
}

Scheduler::OnDisk Scheduler::inspect(const std::string& id) const {
  OnDisk d;
  const fs::path dir = trial_dir(id);
  d.attempts = count_attempts(dir);
  if (fs::exists(dir / "result.h5")) {
    try {
      d.summary = io::read_summary(dir / "result.h5");
      d.has_summary = true;
    } catch (const std::exception&) {
      // An unreadable result is not trusted: the trial runs (resumes) again and rewrites it.
      d.has_summary = false;
    }
  }
  return d;
}

bool Scheduler::is_done(const OnDisk& d) const {
  if (!d.has_summary) return false;
  const std::string& s = d.summary.status;
  return s == "COMPLETED" || s == "DIVERGED" || (s == "FAILED" && d.attempts >= planner_.study().max_attempts);
}

void Scheduler::add(const PlannedTrial& t) {
  if (index_.count(t.id) != 0) return;
  TrialRecord rec;
  rec.trial = t;
  const OnDisk d = inspect(t.id);
  rec.attempts = d.attempts;
  rec.has_summary = d.has_summary;
  rec.summary = d.summary;
  if (is_done(d)) {
    rec.state = d.summary.status;
    store_[t.id] = store_loss(d.summary);
  }
  index_[t.id] = records_.size();
  records_.push_back(std::move(rec));
}

void Scheduler::plan_cell(std::size_t cell) {
  // Trials of later rounds may already be on disk (a resumed sweep): adding them can complete the
  // round, so plan again until the round's trials are all really outstanding.
  for (;;) {
    CdRound round = planner_.cd_round(cell, store_);
    round_history_[{cell, round.round}] = round;
    const std::size_t known = store_.size();
    for (const PlannedTrial& t : round.todo) add(t);
    if (store_.size() == known) {
      rounds_[cell] = std::move(round);
      return;
    }
  }
}

std::optional<PlannedTrial> Scheduler::next(int group) {
  TrialRecord* best = nullptr;
  for (TrialRecord& r : records_)
    if (r.state == "pending" && (best == nullptr || r.trial.cost > best->trial.cost)) best = &r;
  if (best == nullptr) return std::nullopt;
  best->state = "running";
  best->group = group;
  best->started_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  best->live_step = -1;
  return best->trial;
}

void Scheduler::finished(const std::string& id, const io::TrialSummary& summary, bool interrupted) {
  const auto it = index_.find(id);
  if (it == index_.end()) throw std::logic_error("Scheduler::finished: unknown trial " + id);
  TrialRecord& rec = records_[it->second];
  rec.summary = summary;
  rec.has_summary = true;
  rec.group = -1;
  rec.attempts = std::max(rec.attempts + 1, count_attempts(trial_dir(id)));
  OnDisk d{true, summary, rec.attempts};
  if (interrupted || !is_done(d)) {
    rec.state = "pending";
  } else {
    rec.state = summary.status;
    store_[id] = store_loss(summary);
  }
  if (planner_.study().strategy != Strategy::coordinate_descent) return;
  for (const TrialRecord& r : records_)
    if (r.trial.cell == rec.trial.cell && (r.state == "pending" || r.state == "running")) return;
  plan_cell(rec.trial.cell);
}

void Scheduler::progress(const std::string& id, std::int64_t step, double loss, double tokens_per_s) {
  const auto it = index_.find(id);
  if (it == index_.end()) return;
  TrialRecord& rec = records_[it->second];
  if (rec.state != "running") return;
  rec.live_step = step;
  rec.live_loss = loss;
  rec.live_tokens_per_s = tokens_per_s;
}

bool Scheduler::all_done() const {
  for (const TrialRecord& r : records_)
    if (r.state == "pending" || r.state == "running") return false;
  return true;
}

std::size_t Scheduler::running() const {
  return static_cast<std::size_t>(
      std::count_if(records_.begin(), records_.end(), [](const TrialRecord& r) { return r.state == "running"; }));
}

std::vector<DroppedPoint> Scheduler::dropped() const {
  std::vector<DroppedPoint> out = planner_.dropped();
  for (const auto& [cell, round] : rounds_) out.insert(out.end(), round.dropped.begin(), round.dropped.end());
  return out;
}

std::string Scheduler::status_json(double elapsed_s) const {
  using nlohmann::json;
  json counts = json::object();
  for (const char* s : {"pending", "running", "COMPLETED", "DIVERGED", "FAILED"}) counts[s] = 0;
  json trials = json::array();
  for (const TrialRecord& r : records_) {
    counts[r.state] = counts[r.state].get<int>() + 1;
    json row = {{"id", r.trial.id},
                {"cell", r.trial.cell_name},
                {"optimizer", r.trial.optimizer},
                {"seed", r.trial.seed},
                {"point", r.trial.point},
                {"state", r.state},
                {"attempts", r.attempts},
                {"steps", r.trial.config.train.steps},
                {"dir", trial_dir(r.trial.id).string()}};
    json step = nullptr, loss = nullptr, tps = nullptr;
    if (r.state == "running" && r.live_step >= 0) {
      // Live progress: the group leader's last report (every few seconds).
      step = r.live_step;
      if (std::isfinite(r.live_loss)) loss = r.live_loss;
      tps = r.live_tokens_per_s;
      row["group"] = r.group;
      row["running_s"] = elapsed_s - r.started_s;
    } else if (r.state == "running") {
      // No report yet: the last committed checkpoint's step.
      if (const auto s = io::CheckpointStore(trial_dir(r.trial.id) / "checkpoints").latest_committed()) step = *s;
      row["group"] = r.group;
      row["running_s"] = elapsed_s - r.started_s;
    } else if (r.has_summary) {
      step = r.summary.steps_done;
      if (std::isfinite(r.summary.final_eval_loss)) loss = r.summary.final_eval_loss;
      if (r.summary.wall_s > 0) tps = static_cast<double>(r.summary.tokens_seen) / r.summary.wall_s;
      if (!r.summary.message.empty()) row["message"] = r.summary.message;
    }
    if (const auto q = quarantined_files(trial_dir(r.trial.id)); !q.empty()) row["quarantined"] = q;
    row["step"] = step;
    row["loss"] = loss;
    row["tokens_per_s"] = tps;
    trials.push_back(std::move(row));
  }
  json cd = json::array();
  for (const auto& [cell, round] : rounds_) {
    cd.push_back({{"cell", planner_.cells()[cell].name},
                  {"round", round.round},
                  {"centre", round.centre_text},
                  {"converged", round.converged},
                  {"best_loss", std::isfinite(round.best_loss) ? json(round.best_loss) : json(nullptr)},
                  {"todo", round.todo.size()},
                  {"near_best", round.near_best},
                  {"edge_alarms", round.edge_alarms}});
  }
  json dropped = json::array();
  for (const DroppedPoint& d : this->dropped())
    dropped.push_back({{"cell", d.cell}, {"point", d.point}, {"reason", d.reason}});
  const json status = {{"study", planner_.study().name},
                       {"strategy", strategy_name(planner_.study().strategy)},
                       {"elapsed_s", elapsed_s},
                       {"counts", counts},
                       {"trials", trials},
                       {"coordinate_descent", cd},
                       {"dropped", dropped}};
  return status.dump(1) + "\n";
}

void Scheduler::write_status(double elapsed_s) const {
  io::write_file_atomic(dir_ / "status.json", status_json(elapsed_s));
}

void Scheduler::write_index() const {
  namespace h5 = io::h5;
  const fs::path final_path = dir_ / "sweep.h5";
  const fs::path tmp = dir_ / "sweep.h5.tmp";
  {
    h5::File file = h5::create_file(tmp, false);
    h5::write_attribute(file, "schema_version", std::int64_t{1});
    h5::write_attribute(file, "sweep_id", planner_.study().name);
    h5::write_attribute(file, "strategy", std::string(strategy_name(planner_.study().strategy)));
    h5::write_attribute(file, "config_schema", config::kConfigSchemaVersion);  // of the trial ids below
    h5::write_attribute(file, "git_sha", io::build_git_sha());
    h5::write_string_dataset(file, "config", resolved_study_yaml(planner_));

    // /trials, /point, /axes: one row per trial (core/io/sweep_index.hpp).
    std::vector<io::SweepIndexRow> rows;
    rows.reserve(records_.size());
    for (const TrialRecord& r : records_) {
      rows.push_back(
          {.trial_id = r.trial.id,
           .optimizer = r.trial.optimizer,
           .seed = static_cast<std::int64_t>(r.trial.seed),
           .cell = r.trial.cell_name,
           .model_tag = r.trial.model_tag,
           .data_ratio = r.trial.data_ratio,
           .point = r.trial.point,
           .axes = r.trial.axes,
           .status = r.state,
           .final_eval_loss = r.has_summary ? r.summary.final_eval_loss : std::numeric_limits<double>::infinity(),
           .steps = static_cast<std::int64_t>(r.trial.config.train.steps),
           .tokens = static_cast<std::int64_t>(r.has_summary ? r.summary.tokens_seen : 0),
           .n_attempts = static_cast<std::int32_t>(r.attempts)});
    }
    io::write_sweep_index(file, rows);

    // /trial_files/<id>: external links, resolved relative to sweep.h5's directory.
    h5::Group links = h5::create_group(file, "trial_files");
    {
      h5::ErrorGuard guard;
      for (const TrialRecord& r : records_) {
        if (!fs::exists(trial_dir(r.trial.id) / "result.h5")) continue;
        const std::string target = "trials/" + r.trial.id + "/result.h5";
        h5::check_status(
            H5Lcreate_external(target.c_str(), "/", links.id(), r.trial.id.c_str(), H5P_DEFAULT, H5P_DEFAULT),
            "create external link /trial_files/" + r.trial.id + " in " + tmp.string());
      }
    }
    links.close();
    file.close();
  }
  io::fsync_file(tmp);
  io::rename_atomic(tmp, final_path);
  write_state();
}

void Scheduler::write_state() const {
  namespace h5 = io::h5;
  const fs::path state_dir = dir_ / "coordinator";
  fs::create_directories(state_dir);
  const fs::path final_path = state_dir / "state.h5";
  const fs::path tmp = state_dir / "state.h5.tmp";
  {
    h5::File file = h5::create_file(tmp, false);
    h5::write_attribute(file, "schema_version", std::int64_t{1});
    h5::write_attribute(file, "sweep_id", planner_.study().name);
    h5::write_attribute(file, "strategy", std::string(strategy_name(planner_.study().strategy)));
    h5::write_attribute(file, "tolerance", planner_.study().tolerance);

    // /cd_rounds: one packed row per (cell, round), in cell then round order.
    const h5::Datatype s64 = h5::string_type(64), s256 = h5::string_type(256), s1024 = h5::string_type(1024);
    const h5::CompoundField fields[] = {
        {"cell", s64.id()},         {"round", H5T_NATIVE_INT32},
        {"centre", s256.id()},      {"best_loss", H5T_NATIVE_DOUBLE},
        {"todo", H5T_NATIVE_INT64}, {"converged", H5T_NATIVE_UINT8},
        {"near_best", s1024.id()},  {"edge_alarms", s1024.id()},
    };
    std::vector<std::size_t> off;
    const h5::Datatype row = h5::make_compound(fields, &off);
    const std::size_t row_size = H5Tget_size(row.id());
    std::vector<unsigned char> buf(row_size * round_history_.size(), 0);
    std::size_t i = 0;
    const auto join = [](const std::vector<std::string>& items) {
      std::string out;
      for (const std::string& x : items) out += (out.empty() ? "" : "; ") + x;
      return out;
    };
    for (const auto& [key, round] : round_history_) {
      unsigned char* p = buf.data() + i++ * row_size;
      const auto put_str = [&](std::size_t field, const std::string& v, std::size_t size) {
        std::memcpy(p + off[field], v.data(), std::min(size, v.size()));
      };
      const auto put = [&](std::size_t field, const auto& v) { std::memcpy(p + off[field], &v, sizeof(v)); };
      put_str(0, planner_.cells()[key.first].name, 64);
      put(1, static_cast<std::int32_t>(round.round));
      put_str(2, round.centre_text, 256);
      put(3, round.best_loss);
      put(4, static_cast<std::int64_t>(round.todo.size()));
      put(5, static_cast<std::uint8_t>(round.converged ? 1 : 0));
      put_str(6, join(round.near_best), 1024);
      put_str(7, join(round.edge_alarms), 1024);
    }
    h5::Dataset rounds = h5::create_row_dataset(file, "cd_rounds", row.id(), {}, 64);
    if (!round_history_.empty()) h5::append_rows(rounds, row.id(), buf.data(), round_history_.size());
    rounds.close();
    file.close();
  }
  io::fsync_file(tmp);
  io::rename_atomic(tmp, final_path);
}

std::string Scheduler::summary_text() const {
  std::map<std::string, int> counts;
  for (const TrialRecord& r : records_) ++counts[r.state];
  std::string s = fmt::format("sweep {}: {} trial(s):", planner_.study().name, records_.size());
  for (const char* state : {"COMPLETED", "DIVERGED", "FAILED", "pending", "running"})
    if (counts[state] > 0) s += fmt::format(" {} {}", counts[state], state);
  s += "\n";
  bool header = false;
  for (const TrialRecord& r : records_) {
    if (r.state != "FAILED") continue;
    if (!header) s += "failed trials:\n";
    header = true;
    s += fmt::format("  {} ({} seed {} {}) after {} attempt(s): {}\n    log: {}\n", r.trial.id, r.trial.cell_name,
                     r.trial.seed, r.trial.point, r.attempts, r.summary.message,
                     (trial_dir(r.trial.id) / "log.txt").string());
  }
  for (const TrialRecord& r : records_)
    for (const std::string& q : quarantined_files(trial_dir(r.trial.id)))
      s += fmt::format("quarantined (damaged, kept aside): {}\n", (trial_dir(r.trial.id) / "quarantine" / q).string());
  const auto drops = dropped();
  if (!drops.empty()) {
    s += fmt::format("{} infeasible point(s) dropped:\n", drops.size());
    for (const DroppedPoint& d : drops) s += fmt::format("  {} {}: {}\n", d.cell, d.point, d.reason);
  }
  for (const auto& [cell, round] : rounds_) {
    const std::string& name = planner_.cells()[cell].name;
    if (!round.converged) {
      s += fmt::format("{}: round {} unfinished around {}\n", name, round.round, round.centre_text);
      continue;
    }
    s += fmt::format("{}: converged after {} round(s) at {} (loss {:.4f}); {} point(s) within tolerance\n", name,
                     round.round + 1, round.centre_text, round.best_loss, round.near_best.size());
    for (const std::string& a : round.edge_alarms) s += fmt::format("  ALARM {}\n", a);
  }
  return s;
}

std::string resolved_study_yaml(const Planner& planner) {
  const Study& st = planner.study();
  std::string y = "study: " + st.name + "\nsearch:\n";
  y += fmt::format("  strategy: {}\n", strategy_name(st.strategy));
  y += "  seeds: [";
  for (std::size_t i = 0; i < st.seeds.size(); ++i) y += fmt::format("{}{}", i ? ", " : "", st.seeds[i]);
  y += "]\n";
  if (st.strategy == Strategy::halton) y += fmt::format("  points: {}\n", st.halton_points);
  if (st.strategy == Strategy::coordinate_descent)
    y += fmt::format("  tolerance: {}\n  recentre_min_saving: {}\n", config::format_double(st.tolerance),
                     st.recentre_min_saving);
  if (!st.models.empty()) {
    y += fmt::format("scales:\n  tokens_per_param: {}\n  data_ratios: [", config::format_double(st.tokens_per_param));
    for (std::size_t i = 0; i < st.data_ratios.size(); ++i)
      y += (i ? ", " : "") + config::format_double(st.data_ratios[i]);
    y += "]\n";
  }
  y += fmt::format("sweep:\n  ranks_per_trial: {}\n  max_attempts: {}\n  collective_timeout_s: {}\ncells:\n",
                   st.ranks_per_trial, st.max_attempts, config::format_double(st.collective_timeout_s));
  for (std::size_t c = 0; c < planner.cells().size(); ++c) {
    const Cell& cell = planner.cells()[c];
    y += fmt::format("  {}:\n    axes:\n", config::format_string(cell.name));
    for (const Axis& a : st.optimizers[cell.optimizer].axes) {
      if (a.continuous) {
        y += fmt::format("      {}: {{min: {}, max: {}, log: {}}}\n", a.key, config::format_double(a.min),
                         config::format_double(a.max), a.log ? "true" : "false");
        continue;
      }
      y += fmt::format("      {}: [", a.key);
      for (std::size_t i = 0; i < a.values.size(); ++i)
        y += (i ? ", " : "") + (a.values[i].plain ? a.values[i].text : config::format_string(a.values[i].text));
      y += "]\n";
    }
    config::TrialConfig base = planner.cell_base(c);
    base.out = "";
    y += "    base:\n" + indent(config::to_canonical_yaml(base), 6);
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Commands

namespace {

std::string trial_line(const PlannedTrial& t) {
  return fmt::format("{}  {:<22} seed {:<3} steps {:<6} params {:<8} {}", t.id, t.cell_name, t.seed,
                     t.config.train.steps, t.n_params, t.point);
}

std::atomic<int> g_coordinator_signal{0};
extern "C" void on_coordinator_signal(int sig) { g_coordinator_signal.store(sig); }

// An exclusive lock on <dir>/.sweep.lock: two sweeps on one directory would hand out trials twice.
class SweepLock {
 public:
  explicit SweepLock(const fs::path& dir) {
    fs::create_directories(dir);
    const fs::path path = dir / ".sweep.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot create " + path.string());
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw std::runtime_error(dir.string() + " is in use by another `expt sweep` (lock " + path.string() +
                               " is held)");
    }
  }
  ~SweepLock() { ::close(fd_); }
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;

 private:
  int fd_ = -1;
};

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
  if (signal != 0) return 128 + signal;
  for (const TrialRecord& r : sched.records())
    if (r.state == "FAILED") return kExitFailed;
  return kExitOk;
}

void prepare_directory(const Study& study, const Planner& planner, const fs::path& dir) {
  fs::create_directories(dir / "trials");
  for (const std::string& line : adopt_legacy_trial_directories(dir / "trials"))
    std::printf("[sweep] %s\n", line.c_str());
  io::write_file_atomic(dir / "sweep.yaml", study.text);
  io::write_file_atomic(dir / "sweep.resolved.yaml", resolved_study_yaml(planner));
}

int run_local(const Study& study, const Planner& planner, const fs::path& dir) {
  if (study.ranks_per_trial != 1) {
    std::fprintf(stderr,
                 "expt: sweep.ranks_per_trial is %d; launch `mpirun -np %d expt sweep ...` (1 coordinator + groups "
                 "of %d)\n",
                 study.ranks_per_trial, 1 + study.ranks_per_trial, study.ranks_per_trial);
    return kExitUsage;
  }
  SweepLock lock(dir);
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

int coordinate(const Study& study, const Planner& planner, const fs::path& dir, int world_size) {
  const int group_size = study.ranks_per_trial;
  const int n_groups = (world_size - 1) / group_size;
  std::unique_ptr<SweepLock> lock;
  try {
    lock = std::make_unique<SweepLock>(dir);
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

int work(int world_rank, int group_size, double collective_timeout_s) {
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
  return signal != 0 ? 128 + signal : kExitOk;
}

}  // namespace

int plan_command(const std::string& study_path, const std::vector<std::string>& sets, std::ostream& out) {
  try {
    const Study study = load_study(study_path, sets);
    const Planner planner(study);
    out << fmt::format("study {}: strategy {}, {} cell(s), {} seed(s), {} rank(s) per trial\n", study.name,
                       strategy_name(study.strategy), planner.cells().size(), study.seeds.size(),
                       study.ranks_per_trial);
    std::vector<DroppedPoint> dropped = planner.dropped();
    if (study.strategy == Strategy::coordinate_descent) {
      std::size_t total = 0;
      for (std::size_t c = 0; c < planner.cells().size(); ++c) {
        const CdRound round = planner.cd_round(c, {});
        out << fmt::format("cell {}: first round around {}: {} trial(s)\n", planner.cells()[c].name, round.centre_text,
                           round.todo.size());
        for (const PlannedTrial& t : longest_first(round.todo)) out << "  " << trial_line(t) << "\n";
        total += round.todo.size();
        dropped.insert(dropped.end(), round.dropped.begin(), round.dropped.end());
      }
      out << fmt::format("{} trial(s) in the first round; later rounds depend on the results\n", total);
    } else {
      out << fmt::format("{} trial(s), longest first:\n", planner.static_trials().size());
      for (const PlannedTrial& t : longest_first(planner.static_trials())) out << "  " << trial_line(t) << "\n";
    }
    if (!dropped.empty()) {
      out << fmt::format("{} infeasible point(s) dropped:\n", dropped.size());
      for (const DroppedPoint& d : dropped) out << fmt::format("  {} {}: {}\n", d.cell, d.point, d.reason);
    }
    return kExitOk;
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    return kExitUsage;
  }
}

int sweep_command(int argc, char** argv, const std::string& study_path, const std::vector<std::string>& sets,
                  const std::string& out) {
  std::unique_ptr<comm::MpiSession> mpi;
  int world_rank = 0, world_size = 1;
  if (comm::launched_by_mpi()) {
    mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    world_rank = mpi->world_rank();
    world_size = mpi->world_size();
  }
  std::optional<Study> study;
  try {
    study = load_study(study_path, sets);
  } catch (const config::ConfigErrors& e) {
    if (world_rank == 0) config::report_errors(e, "study");
    return kExitUsage;
  }
  const fs::path dir = out.empty() ? fs::path("runs") / study->name : fs::path(out);
  if (world_size > 1 && (world_size - 1) % study->ranks_per_trial != 0) {
    if (world_rank == 0)
      std::fprintf(stderr,
                   "expt: %d ranks cannot form groups of sweep.ranks_per_trial = %d plus one coordinator; launch "
                   "1 + k*%d ranks\n",
                   world_size, study->ranks_per_trial, study->ranks_per_trial);
    return kExitUsage;
  }
  if (world_size > 1 && world_rank != 0) return work(world_rank, study->ranks_per_trial, study->collective_timeout_s);

  std::optional<Planner> planner;
  try {
    planner.emplace(*study);
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    if (world_size > 1) MPI_Abort(MPI_COMM_WORLD, kExitUsage);
    return kExitUsage;
  }
  if (world_size == 1) {
    try {
      return run_local(*study, *planner, dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "expt: error: %s\n", e.what());
      return kExitFailed;
    }
  }
  // The coordinator takes no part in the split's groups.
  MPI_Comm none;
  MPI_Comm_split(MPI_COMM_WORLD, MPI_UNDEFINED, 0, &none);
  try {
    return coordinate(*study, *planner, dir, world_size);
  } catch (const std::exception& e) {
    // Groups would wait forever for work: end the whole job with the reason.
    std::fprintf(stderr, "expt: sweep coordinator error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, kExitFailed);
    return kExitFailed;
  }
}

namespace {
void print_status_table(const nlohmann::json& j, std::ostream& out);
}  // namespace

int status_command(const std::string& dir, std::ostream& out) {
  const fs::path path = fs::path(dir) / "status.json";
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "expt: %s not found (is %s a sweep directory?)\n", path.string().c_str(), dir.c_str());
    return kExitFailed;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
    print_status_table(j, out);
  } catch (const std::exception& e) {
    // Not JSON, or JSON of another shape (a field missing or of another type): a clear error.
    std::fprintf(stderr, "expt: cannot read %s: %s\n", path.string().c_str(), e.what());
    return kExitFailed;
  }
  return kExitOk;
}

namespace {

void print_status_table(const nlohmann::json& j, std::ostream& out) {
  out << fmt::format("sweep {} ({}), {:.0f} s:", j.value("study", ""), j.value("strategy", ""),
                     j.value("elapsed_s", 0.0));
  for (const auto& [state, n] : j.at("counts").items()) out << fmt::format(" {} {}", n.get<int>(), state);
  out << "\n";
  out << fmt::format("{:<16}  {:<22} {:>4}  {:<9} {:>13} {:>9} {:>10} {:>3}  {}\n", "trial", "cell", "seed", "state",
                     "step", "loss", "tok/s", "att", "point");
  const auto num = [](const nlohmann::json& v, const char* fmtstr) {
    return v.is_null() ? std::string("-") : fmt::format(fmt::runtime(fmtstr), v.get<double>());
  };
  for (const auto& t : j.at("trials")) {
    const std::string step = fmt::format(
        "{}/{}", t.at("step").is_null() ? std::string("-") : std::to_string(t.at("step").get<std::int64_t>()),
        t.at("steps").get<std::int64_t>());
    out << fmt::format("{:<16}  {:<22} {:>4}  {:<9} {:>13} {:>9} {:>10} {:>3}  {}\n", t.at("id").get<std::string>(),
                       t.at("cell").get<std::string>(), t.at("seed").get<std::uint64_t>(),
                       t.at("state").get<std::string>(), step, num(t.at("loss"), "{:.4f}"),
                       num(t.at("tokens_per_s"), "{:.0f}"), t.at("attempts").get<int>(),
                       t.at("point").get<std::string>());
  }
  for (const auto& c : j.at("coordinate_descent")) {
    out << fmt::format("cd {}: round {} centre {} {}\n", c.at("cell").get<std::string>(), c.at("round").get<int>(),
                       c.at("centre").get<std::string>(), c.at("converged").get<bool>() ? "converged" : "running");
    for (const auto& a : c.at("edge_alarms")) out << "  ALARM " << a.get<std::string>() << "\n";
  }
}

}  // namespace

}  // namespace expt::experiments
