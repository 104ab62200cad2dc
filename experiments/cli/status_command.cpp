// `expt status DIR [--watch [SECONDS]]`: the table of a sweep from its status.json, with liveness
// from the heartbeats (core/io/heartbeat.hpp) and the leases (core/io/trial_lease.hpp): a trial is
// "running" only while a fresh heartbeat says so; otherwise "interrupted" with what to run to resume.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>

#include "core/io/heartbeat.hpp"
#include "core/io/trial_lease.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/sweep/sweep_status.hpp"
#include "experiments/trial/stop_signal.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

// "1h02m", "3m05s", "42s".
std::string duration_text(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  const auto t = static_cast<long long>(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

struct Live {
  io::SweepLiveness sweep;
  std::vector<io::HeartbeatRecord> beats;
  std::map<std::string, const io::HeartbeatRecord*> training;  // trial -> the live process training it
  double now = 0;
};

// The table. Returns whether the sweep is running.
bool print_status(const fs::path& dir, const nlohmann::json& j, std::ostream& out) {
  Live live;
  live.now = io::lease_clock_now();
  live.sweep = io::sweep_liveness(dir, live.now);
  live.beats = io::read_heartbeats(dir);
  for (const io::HeartbeatRecord& b : live.beats)
    if (!b.trial.empty() && io::liveness(b, live.now) == io::Liveness::running) live.training[b.trial] = &b;
  // Without heartbeats (a directory of an older expt) status.json's word is all there is.
  const bool known = live.sweep.any;

  struct Row {
    std::string id, cell, state, step, loss, tps, eta, point, role;
    std::uint64_t seed = 0;
    int attempts = 0;
  };
  std::vector<Row> rows;
  std::map<std::string, int> counts;
  double remaining_s = 0;  // of the running trials plus the estimate of the pending ones
  int running = 0;
  double step_s_sum = 0;  // finished trials: wall seconds per step, for the pending ones' estimate
  std::int64_t steps_sum = 0;
  std::int64_t pending_steps = 0;
  for (const auto& t : j.at("trials")) {
    Row r;
    r.id = t.at("id").get<std::string>();
    r.cell = t.at("cell").get<std::string>();
    r.seed = t.at("seed").get<std::uint64_t>();
    r.point = t.at("point").get<std::string>();
    r.attempts = t.at("attempts").get<int>();
    r.state = t.at("state").get<std::string>();
    r.role = t.value("role", "");  // WSD branching and halving (absent from an older expt's status.json)
    const std::int64_t steps = t.at("steps").get<std::int64_t>();
    std::int64_t step = t.at("step").is_null() ? -1 : t.at("step").get<std::int64_t>();
    double loss = t.at("loss").is_null() ? NAN : t.at("loss").get<double>();
    double step_s = t.value("step_s", 0.0);
    const auto trainer = live.training.find(r.id);
    const bool finished = r.state == "COMPLETED" || r.state == "DIVERGED" || r.state == "FAILED";
    const bool pruned = r.state == "PRUNED";  // never runs again: no ETA, no resume
    if (!finished && !pruned && trainer != live.training.end()) {
      r.state = "running";
      if (trainer->second->step >= step) {
        step = trainer->second->step;
        loss = trainer->second->loss;
        step_s = trainer->second->step_s;
      }
    } else if (r.state == "running" && known &&
               std::none_of(live.beats.begin(), live.beats.end(), [&](const io::HeartbeatRecord& b) {
                 return b.kind == "sweep" && io::liveness(b, live.now) == io::Liveness::running;
               })) {
      // No live process trains it (an `expt sweep` coordinator reports for its groups): its process
      // died or stopped; a worker takes it over once its lease expires.
      r.state = "interrupted";
    }
    ++counts[r.state];
    r.step = fmt::format("{}/{}", step < 0 ? std::string("-") : std::to_string(step), steps);
    // Which loss: the training loss of the running step, the final eval loss of a finished trial.
    if (std::isfinite(loss) && step >= 0)
      r.loss = finished ? fmt::format("eval {:.4f} @{}", loss, step) : fmt::format("train {:.4f} @{}", loss, step);
    else
      r.loss = "-";
    r.tps = t.at("tokens_per_s").is_null() ? "-" : fmt::format("{:.0f}", t.at("tokens_per_s").get<double>());
    r.eta = "-";
    if (finished && t.contains("wall_s") && step > 0) {
      step_s_sum += t.at("wall_s").get<double>();
      steps_sum += step;
    }
    if (r.state == "running") {
      ++running;
      if (step_s > 0 && step >= 0) {
        const double left = step_s * static_cast<double>(steps - step);
        r.eta = duration_text(left);
        remaining_s += left;
      }
    } else if (!finished && !pruned) {
      pending_steps += steps - std::max<std::int64_t>(step, 0);
    }
    rows.push_back(std::move(r));
  }

  out << fmt::format("sweep {} ({}), {:.0f} s: {}\n", j.value("study", ""), j.value("strategy", ""),
                     j.value("elapsed_s", 0.0), known ? live.sweep.describe() : std::string("liveness unknown"));
  out << "trials:";
  for (const char* s : {"pending", "running", "interrupted", "COMPLETED", "DIVERGED", "FAILED"})
    out << fmt::format(" {} {}", counts[s], s);
  if (counts["PRUNED"] > 0) out << fmt::format(" {} PRUNED", counts["PRUNED"]);
  out << "\n";
  if (steps_sum > 0 && (running > 0 || pending_steps > 0)) {
    // Pending trials at the finished ones' mean seconds per step, spread over the trials running now.
    const double total = remaining_s + static_cast<double>(pending_steps) * step_s_sum / static_cast<double>(steps_sum);
    out << fmt::format("ETA {} ({} running; pending trials at {:.3f} s/step measured on finished ones)\n",
                       duration_text(total / std::max(1, running)), running,
                       step_s_sum / static_cast<double>(steps_sum));
  }
  if (known && !live.sweep.running && counts["pending"] + counts["interrupted"] > 0 && !live.sweep.command.empty())
    out << "resume with: " << live.sweep.command << "\n";

  const std::string header_fmt = "{:<16}  {:<22} {:>4}  {:<11} {:>13}  {:<21} {:>8} {:>7} {:>3}  {}\n";
  out << fmt::format(fmt::runtime(header_fmt), "trial", "cell", "seed", "state", "step/steps", "loss (which @ step)",
                     "tok/s", "ETA", "att", "point");
  for (const Row& r : rows)
    out << fmt::format(fmt::runtime(header_fmt), r.id, r.cell, r.seed, r.state, r.step, r.loss, r.tps, r.eta,
                       r.attempts, r.role.empty() ? r.point : r.point + "  [" + r.role + "]");
  for (const auto& c : j.at("coordinate_descent")) {
    out << fmt::format("cd {}: round {} centre {} {}\n", c.at("cell").get<std::string>(), c.at("round").get<int>(),
                       c.at("centre").get<std::string>(), c.at("converged").get<bool>() ? "converged" : "running");
    for (const auto& a : c.at("edge_alarms")) out << "  ALARM " << a.get<std::string>() << "\n";
  }
  // search.confirm (absent from the status.json of an older expt).
  for (const auto& c : j.value("confirmation", nlohmann::json::array())) {
    const std::string cell = c.at("cell").get<std::string>();
    if (!c.at("ready").get<bool>()) {
      out << fmt::format("confirm {}: waits for the search\n", cell);
      continue;
    }
    std::string points;
    for (const auto& p : c.at("points"))
      points += fmt::format("{}[{}]", points.empty() ? "" : ", ", p.get<std::string>());
    out << fmt::format("confirm {}: {}/{} trial(s) done, {} point(s): {}\n", cell, c.at("done").get<int>(),
                       c.at("trials").get<int>(), c.at("points").size(), points.empty() ? "none" : points);
  }

  // search.halving: each group's decided rungs and the one it waits for.
  for (const auto& g : j.value("halving", nlohmann::json::array())) {
    const std::string name =
        fmt::format("halving {} rung x{}", g.at("group").get<std::string>(), g.at("ratio").get<double>());
    if (!g.at("decided").get<bool>()) {
      out << fmt::format("{}: waits, {}/{} trial(s) done\n", name, g.at("done").get<int>(), g.at("trials").get<int>());
      continue;
    }
    const auto kept = g.at("kept").get<std::size_t>();
    std::string kept_text, pruned_text;
    std::size_t i = 0;
    for (const auto& p : g.at("ranked")) {
      std::string& text = i++ < kept ? kept_text : pruned_text;
      text +=
          fmt::format("{}[{}] {}", text.empty() ? "" : ", ", p.at("point").get<std::string>(),
                      p.at("loss").is_null() ? std::string("inf") : fmt::format("{:.4f}", p.at("loss").get<double>()));
    }
    out << fmt::format("{}: kept {}: {}; pruned: {}\n", name, kept, kept_text.empty() ? "none" : kept_text,
                       pruned_text.empty() ? "none" : pruned_text);
  }
  if (!live.beats.empty()) {
    out << "processes (heartbeats):\n";
    for (const io::HeartbeatRecord& b : live.beats)
      out << fmt::format("  {:<6} {:<34} {:<11} last beat {:>5.1f} s ago, up {}{}\n", b.kind, b.id,
                         io::liveness_name(io::liveness(b, live.now)), live.now - b.beat_s,
                         duration_text(b.beat_s - b.started_s), b.trial.empty() ? "" : ", training " + b.trial);
  }
  const fs::path leases_dir = dir / "leases";
  if (fs::is_directory(leases_dir)) {
    const io::TrialLeases leases(leases_dir, io::WorkerIdentity{}, io::LeaseSettings::from_environment());
    bool header = false;
    for (const io::LeaseRecord& l : leases.all()) {
      if (l.released) continue;
      if (!header) out << "leases (held or expired, not released):\n";
      header = true;
      if (!l.readable) {
        // An unreadable lease carries no ttl of its own: it expires the reader's ttl after its mtime.
        out << fmt::format("  {}  generation {}: unreadable, counts as expired {:.0f} s after its last change ({})\n",
                           l.trial, l.generation, l.expires_s - l.renewed_s,
                           live.now < l.expires_s ? fmt::format("in {:.1f} s", l.expires_s - live.now)
                                                  : fmt::format("{:.1f} s ago", live.now - l.expires_s));
        continue;
      }
      out << fmt::format("  {}  generation {} held by {} for {}, renewed {:.1f} s ago, {}\n", l.trial, l.generation,
                         l.worker, duration_text(live.now - l.acquired_s), live.now - l.renewed_s,
                         live.now < l.expires_s ? fmt::format("expires in {:.1f} s", l.expires_s - live.now)
                                                : fmt::format("expired {:.1f} s ago", live.now - l.expires_s));
    }
  }
  return live.sweep.running;
}

}  // namespace

int status_command(const std::string& dir, std::ostream& out, double watch_s) {
  const fs::path path = fs::path(dir) / "status.json";
  const bool clear = watch_s > 0 && ::isatty(STDOUT_FILENO) == 1;
  if (watch_s > 0) install_stop_signal_handlers();
  for (;;) {
    nlohmann::json status;
    try {
      status = read_sweep_status(dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "expt: %s\n", e.what());
      return kExitFailed;
    }
    bool running = false;
    std::ostringstream text;
    try {
      running = print_status(dir, status, text);
    } catch (const std::exception& e) {
      // JSON of another shape (a field missing or of another type): a clear error.
      std::fprintf(stderr, "expt: cannot read %s: %s\n", path.string().c_str(), e.what());
      return kExitFailed;
    }
    if (clear) out << "\033[H\033[2J";
    out << text.str() << std::flush;
    if (watch_s <= 0 || !running) return kExitOk;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(watch_s);
    while (std::chrono::steady_clock::now() < until) {
      if (stop_signal_received() != 0) return kExitOk;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!clear) out << "\n";
  }
}

}  // namespace expt::experiments
