// One trial's directory (docs/results-format.md "Results on disk"), owned by one object:
//
//   <dir>/.lock                  held (flock) by the process that trains the trial
//   <dir>/trial.yaml             `# trial <id>, config schema <n>`, then the resolved canonical config
//   <dir>/attempts.jsonl         one JSON line per start / resume / failure / quarantine / end
//   <dir>/log.txt                human-readable log (written by the trainer)
//   <dir>/metrics/seg-<attempt>-<first_step>.h5   metrics segments, consolidated into result.h5
//   <dir>/checkpoints/step-<n>/  committed checkpoints (core/io/checkpoint.hpp)
//   <dir>/quarantine/            damaged files moved aside, never deleted (docs/reliability.md)
//   <dir>/result.h5              the consolidated result
//
// The trainer (experiments/trial/) claims, locks and writes it; the sweep scheduler
// (experiments/sweep/) only reads it (attempts, result, quarantine) to rebuild a sweep's state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/io/checkpoint.hpp"
#include "core/io/results.hpp"

namespace expt::io {

// "2026-12-06T16:45:57Z": the timestamps of attempts.jsonl and log.txt.
std::string utc_time_now();

// An exclusive advisory lock (flock) on <dir>/<lock_name>, held for the object's life. The
// constructor throws std::runtime_error "<dir> is in use by another <holder> (lock <file> is
// held)<advice>" when another process holds it. The lock file is created when missing and never
// removed (removing it would let two processes lock two different files of one name).
class DirectoryLock {
 public:
  DirectoryLock(const std::filesystem::path& dir, const std::string& lock_name, const std::string& holder,
                const std::string& advice = "");
  ~DirectoryLock();
  DirectoryLock(DirectoryLock&& other) noexcept;
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  DirectoryLock& operator=(DirectoryLock&&) = delete;

 private:
  int fd_ = -1;
};

class TrialDirectory {
 public:
  explicit TrialDirectory(std::filesystem::path dir);

  const std::filesystem::path& path() const { return dir_; }
  std::filesystem::path result_path() const { return dir_ / "result.h5"; }
  std::filesystem::path log_path() const { return dir_ / "log.txt"; }
  std::filesystem::path diagnostics_path() const { return dir_ / "diagnostics.h5"; }
  std::filesystem::path segment_path(int attempt, std::int64_t first_step) const;
  CheckpointStore checkpoints() const { return CheckpointStore(dir_ / "checkpoints"); }

  // ---- Reading (any process, no lock) ----

  // Number of "start" events in attempts.jsonl (0 when it is missing): the attempts so far.
  int count_attempts() const;
  // The attempts that ended paused at a rung of successive halving ("paused" lines: the trunk
  // stopped at a fork point to wait for a decision, docs/sweeps.md "Successive halving"). They are
  // not failures: a sweep's max_attempts counts count_attempts() - count_pauses().
  int count_pauses() const;
  // The last line of attempts.jsonl whose event is `event` (null when none).
  nlohmann::json last_attempt_event(const std::string& event) const;
  // result.h5's /summary; nullopt when there is none or it will not read (an unreadable result is
  // not trusted: the trial runs again and rewrites it).
  std::optional<TrialSummary> read_result() const;
  // Names of the files in quarantine/, sorted.
  std::vector<std::string> quarantined_files() const;
  // The newest committed checkpoint's step.
  std::optional<std::int64_t> latest_checkpoint() const { return checkpoints().latest_committed(); }

  // ---- Owning it (the trial group's rank 0 unless said otherwise) ----

  // Creates the directory with metrics/ and checkpoints/.
  void create() const;
  // Holds <dir>/.lock: a second process on the same directory refuses instead of interleaving writes.
  DirectoryLock lock() const;
  // Moves damaged files of earlier attempts to quarantine/ before anything reads them: a result.h5
  // that will not open (it is rebuilt from the checkpoints and segments) and metrics segments that
  // will not read back (redone after the resume). Returns one description per moved file.
  std::vector<std::string> quarantine_damaged() const;
  // Moves checkpoint folders without a valid COMMIT to quarantine/; returns their new paths.
  std::vector<std::filesystem::path> quarantine_incomplete_checkpoints() const;
  // The directory belongs to one trial: when trial.yaml exists and names another trial
  // (core/io/trial_identity.hpp) this throws std::runtime_error naming both ids; when it is missing
  // and `write_if_missing`, it is written (trial_yaml_text). Returns the directory's legacy id
  // when it was written before decision 79 (its checkpoints carry that id), else "". Every rank of
  // a trial may check; one writes.
  std::string claim(const config::TrialConfig& cfg, bool write_if_missing) const;
  // Appends {"attempt", "event", "step", "time_utc", "ranks", "host_pid"} plus `extra`'s fields as
  // one durable line of attempts.jsonl.
  void append_attempt_event(int attempt, const std::string& event, std::int64_t step, int ranks,
                            const nlohmann::json& extra = nlohmann::json::object()) const;
  // Consolidates the metrics segments into result.h5 (core/io/results.hpp) and records each
  // segment that would not open as a "segment_skipped" event of `attempt`.
  ConsolidationReport consolidate(const ResultInfo& info, const TrialSummary& summary, int attempt, std::int64_t step,
                                  int ranks) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace expt::io
