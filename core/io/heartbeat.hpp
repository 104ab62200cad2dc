// Liveness of the processes that work on a sweep directory (docs/sweeps.md "Liveness"): every
// `expt sweep` coordinator (one process or mpirun rank 0) and every `expt worker` rewrites
//
//   <study dir>/heartbeats/<process id>.json
//     {"kind": "sweep"|"worker", "id", "host", "pid", "started_s", "beat_s", "beat_utc",
//      "period_s", "state": "running"|"stopped"|"finished", "trial": id or "", "step", "loss",
//      "step_s", "command"}
//
// every period_s seconds while it runs, and once more with state "stopped" (a signal) or "finished"
// when it exits. A process is alive only while its last beat is fresh (at most kStaleAfterPeriods
// periods old); "running" with a stale beat means it died without a word (SIGKILL, the OOM killer,
// a lost host). `expt status` and `expt analyze` decide "running" from this alone.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace expt::io {

inline constexpr double kHeartbeatPeriodS = 2.0;
inline constexpr double kStaleAfterPeriods = 3.0;

struct HeartbeatRecord {
  std::string kind;  // sweep | worker
  std::string id, host;
  long pid = 0;
  double started_s = 0, beat_s = 0, period_s = kHeartbeatPeriodS;
  std::string state = "running";  // running | stopped | finished
  std::string trial;              // the trial it trains now ("" when none)
  long long step = -1;            // that trial's last step reported (-1: none yet)
  double loss = 0;                // its training loss
  double step_s = 0;              // measured seconds per step of this attempt (0: not measured yet)
  std::string command;            // how it was started (to resume)
};

std::filesystem::path heartbeat_dir(const std::filesystem::path& study_dir);
// Replaces <study dir>/heartbeats/<id>.json whole (temporary file named after the id + rename).
void write_heartbeat(const std::filesystem::path& study_dir, const HeartbeatRecord& record);
// Every readable heartbeat of the directory, newest beat first (unreadable files are skipped).
std::vector<HeartbeatRecord> read_heartbeats(const std::filesystem::path& study_dir);

// running: state running with a fresh beat; interrupted: state running but the beat is stale;
// stopped / finished: as the process said when it exited.
enum class Liveness { running, interrupted, stopped, finished };
Liveness liveness(const HeartbeatRecord& record, double now_s);
const char* liveness_name(Liveness l);

// What a sweep directory's processes say together, at `now_s`.
struct SweepLiveness {
  bool any = false;            // some process ever beat here (directories of older versions have none)
  bool running = false;        // some process is alive
  int alive = 0;               // how many
  double last_beat_age_s = 0;  // of the newest beat
  std::string last_state;      // of the newest beat: running (then interrupted) | stopped | finished
  std::string command;         // of the newest beat
  // "running (2 processes alive)", "interrupted (last heartbeat 14 s ago)", "stopped", "finished".
  std::string describe() const;
};
SweepLiveness sweep_liveness(const std::filesystem::path& study_dir, double now_s);

}  // namespace expt::io
