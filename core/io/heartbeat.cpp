#include "core/io/heartbeat.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "core/io/atomic_file.hpp"
#include "core/io/trial_lease.hpp"

namespace fs = std::filesystem;

namespace expt::io {

fs::path heartbeat_dir(const fs::path& study_dir) { return study_dir / "heartbeats"; }

void write_heartbeat(const fs::path& study_dir, const HeartbeatRecord& r) {
  const fs::path dir = heartbeat_dir(study_dir);
  fs::create_directories(dir);
  const nlohmann::json j = {{"kind", r.kind},
                            {"id", r.id},
                            {"host", r.host},
                            {"pid", r.pid},
                            {"started_s", r.started_s},
                            {"beat_s", r.beat_s},
                            {"beat_utc", utc_time_of(r.beat_s)},
                            {"period_s", r.period_s},
                            {"state", r.state},
                            {"trial", r.trial},
                            {"step", r.step},
                            {"loss", std::isfinite(r.loss) ? nlohmann::json(r.loss) : nlohmann::json(nullptr)},
                            {"step_s", r.step_s},
                            {"command", r.command}};
  const fs::path path = dir / (r.id + ".json");
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << j.dump() << "\n";
    out.close();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  // Not fsynced: a heartbeat lost in a crash only looks older, which is what the crash means.
  rename_atomic(tmp, path);
}

std::vector<HeartbeatRecord> read_heartbeats(const fs::path& study_dir) {
  std::vector<HeartbeatRecord> out;
  std::error_code ec;
  for (fs::directory_iterator it(heartbeat_dir(study_dir), ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".json") continue;
    std::ifstream in(it->path());
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      const nlohmann::json j = nlohmann::json::parse(ss.str());
      HeartbeatRecord r;
      r.kind = j.at("kind").get<std::string>();
      r.id = j.at("id").get<std::string>();
      r.host = j.at("host").get<std::string>();
      r.pid = j.at("pid").get<long>();
      r.started_s = j.at("started_s").get<double>();
      r.beat_s = j.at("beat_s").get<double>();
      r.period_s = j.at("period_s").get<double>();
      r.state = j.at("state").get<std::string>();
      r.trial = j.at("trial").get<std::string>();
      r.command = j.at("command").get<std::string>();
      r.step = j.at("step").get<long long>();
      r.loss = j.at("loss").is_null() ? NAN : j.at("loss").get<double>();
      r.step_s = j.at("step_s").get<double>();
      out.push_back(std::move(r));
    } catch (const std::exception&) {
      // Torn or foreign: says nothing about liveness.
    }
  }
  std::sort(out.begin(), out.end(), [](const HeartbeatRecord& a, const HeartbeatRecord& b) {
    return a.beat_s != b.beat_s ? a.beat_s > b.beat_s : a.id < b.id;
  });
  return out;
}

Liveness liveness(const HeartbeatRecord& r, double now_s) {
  if (r.state == "stopped") return Liveness::stopped;
  if (r.state == "finished") return Liveness::finished;
  return now_s - r.beat_s <= kStaleAfterPeriods * r.period_s ? Liveness::running : Liveness::interrupted;
}

const char* liveness_name(Liveness l) {
  switch (l) {
    case Liveness::running:
      return "running";
    case Liveness::interrupted:
      return "interrupted";
    case Liveness::stopped:
      return "stopped";
    case Liveness::finished:
      return "finished";
  }
  return "?";
}

SweepLiveness sweep_liveness(const fs::path& study_dir, double now_s) {
  SweepLiveness s;
  const auto beats = read_heartbeats(study_dir);
  if (beats.empty()) return s;
  s.any = true;
  for (const HeartbeatRecord& r : beats)
    if (liveness(r, now_s) == Liveness::running) ++s.alive;
  s.running = s.alive > 0;
  const HeartbeatRecord& newest = beats.front();
  s.last_beat_age_s = std::max(0.0, now_s - newest.beat_s);
  s.last_state = liveness_name(liveness(newest, now_s));
  s.command = newest.command;
  return s;
}

std::string SweepLiveness::describe() const {
  if (running) return fmt::format("running ({} process{} alive)", alive, alive == 1 ? "" : "es");
  if (last_state == "interrupted" || last_state == "running")
    return fmt::format("interrupted (last heartbeat {:.0f} s ago)", last_beat_age_s);
  return last_state;
}

}  // namespace expt::io
