// One directory that `expt serve` shows: a sweep directory (sweep.h5 and/or status.json, trials/)
// or a single trial directory (trial.yaml). It reads only what writers have committed, and never
// holds anything a writer waits for (docs/dashboard.md "What is read"):
//   - status.json, sweep.h5, result.h5: replaced whole by rename, so a reader sees the old file or
//     the new one, and a shared HDF5 lock on the old inode never meets the writer of the new one;
//   - metrics segments of a trial without result.h5: every segment but the newest (the only one a
//     running trainer may hold open: it opens the next one only after closing the previous one),
//     consolidated by the same rule as result.h5 (core/io/results.hpp);
//   - trial.yaml (tmp + rename), attempts.jsonl (whole lines appended; a partial last line is
//     skipped).
// A file that will not read (damaged, half-written by a killed process) is left out with a note in
// the answer, never an error. Values derived from a file are cached by its modification time and
// size; metrics are read only when a page asks for a trial's curves, and their cache is bounded in
// bytes (least recently used entries go first).
#pragma once

#include <cstddef>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/io/results.hpp"
#include "core/io/sweep_index.hpp"

namespace expt::serve {

// What identifies one version of a file: its modification time and size (both change when a file
// is replaced by rename or appended to).
struct FileStamp {
  std::filesystem::file_time_type mtime{};
  std::uintmax_t size = 0;
  bool exists = false;
  bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const std::filesystem::path& file);

class ServedDirectory {
 public:
  enum class Kind { sweep, trial };

  // Throws std::invalid_argument with a sentence naming `dir` when it does not exist, is not a
  // directory, or holds neither a sweep (sweep.h5 or status.json) nor a trial (trial.yaml).
  // `metrics_cache_bytes` bounds the cached curves of this directory.
  explicit ServedDirectory(const std::filesystem::path& dir, std::size_t metrics_cache_bytes = 64u << 20);

  Kind kind() const { return kind_; }
  const std::filesystem::path& path() const { return root_; }  // canonical

  // The study overview: trials with their state, losses and role (WSD trunk or branch, confirmation
  // seed), counts by state, coordinate-descent rounds and confirmations per cell, and `notes` for
  // every file left out, serialised. JSON layout: docs/dashboard.md. The answer is kept until
  // sweep.h5, status.json, a trial's result.h5 or a branch's attempts.jsonl changes.
  std::string overview_json();
  // One trial: resolved config, attempts log, events, summary, quarantined files; nullopt when no
  // trial of that id belongs to this directory.
  std::optional<nlohmann::json> trial(const std::string& id);
  // The trial's train and eval series as columns, serialised, at most `max_points` rows each
  // (evenly thinned, the last row kept); nullopt for an unknown id.
  std::optional<std::string> metrics_json(const std::string& id, std::size_t max_points);
  // `expt analyze`'s tables (analysis/report.hpp render_json) with the study's default options, and
  // `best_trials`: {cell: {point, trials}}, the trials of each cell's best point as it chooses it;
  // throws std::runtime_error when the sweep cannot be analysed (no readable sweep.h5).
  std::string analysis_json();

  // A regular file under this directory named by a relative path of plain components (no `..`,
  // `.`, empty or absolute parts), whose real path (symbolic links resolved) stays under the
  // directory or its trials/ folder; nullopt otherwise.
  std::optional<std::filesystem::path> resolve_file(const std::string& relative) const;

  // Bytes of curves held in the cache now (tests check the bound).
  std::size_t metrics_cache_size();

 private:
  std::filesystem::path trial_dir(const std::string& id) const;
  bool known_trial(const std::string& id);
  struct IndexEntry {
    FileStamp stamp;
    std::vector<io::SweepIndexRow> rows;
    int ranks_per_trial = 1;
    bool branching = false;  // scales.branching: wsd
    // Each cell's base schedule (sweep.h5's resolved study), for a planned branch's fork step.
    std::map<std::string, config::ScheduleConfig> cell_schedules;
    std::string error;  // sweep.h5 would not read
  };
  const IndexEntry& index();  // mutex_ held
  // WSD branches: each trunk's and branch's role by trial id, {role, text, trunk?, from_step?,
  // branches?, forked?, fork_skipped?} (docs/dashboard.md "Roles"); empty without branching.
  std::map<std::string, nlohmann::json> branch_roles(const IndexEntry& idx);  // mutex_ held
  struct AttemptsEntry {
    FileStamp stamp;
    nlohmann::json fork;   // the last "fork" or "fork_skipped" line of attempts.jsonl; null without
    bool started = false;  // an attempt has started ("start" line)
  };
  std::map<std::string, AttemptsEntry> forks_;  // by trial id
  struct ScheduleEntry {
    FileStamp stamp;
    std::optional<config::ScheduleConfig> schedule;  // of trial.yaml; nullopt while it will not read
  };
  std::map<std::string, ScheduleEntry> schedules_;  // by trial id
  struct SummaryEntry {
    FileStamp stamp;
    std::optional<io::TrialSummary> summary;
    std::string error;
  };
  const SummaryEntry& summary(const std::string& id);  // mutex_ held
  std::string sweep_overview();
  nlohmann::json trial_overview();

  Kind kind_ = Kind::sweep;
  std::filesystem::path root_;
  std::string single_trial_id_;  // Kind::trial: the id trial.yaml names

  std::mutex mutex_;  // the caches below; the server answers requests from several threads
  IndexEntry index_;
  std::map<std::string, SummaryEntry> summaries_;
  struct StatusEntry {
    FileStamp stamp;
    bool loaded = false;
    nlohmann::json status;
    std::string error;
  } status_;
  struct OverviewEntry {
    std::string stamps;  // sweep.h5, status.json, every trial's result.h5 and the roles, as text
    std::string json;
    std::map<std::string, nlohmann::json> roles;  // trial id -> role, for the trial page
  } overview_;
  struct AnalysisEntry {
    FileStamp stamp;
    std::string liveness;  // liveness_key() when it was built: "running" in it depends on the heartbeats
    std::string json;
  } analysis_;

  // Curves: key = trial id, value = the serialised answer and the stamps it was built from.
  struct MetricsEntry {
    std::string stamps;  // result.h5 and every segment file's stamp, as text
    std::size_t max_points = 0;
    std::string body;
  };
  std::list<std::pair<std::string, MetricsEntry>> metrics_lru_;  // most recently used first
  std::size_t metrics_bytes_ = 0, metrics_cache_limit_ = 0;
};

}  // namespace expt::serve
