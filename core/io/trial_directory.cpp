#include "core/io/trial_directory.hpp"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/trial_identity.hpp"

namespace fs = std::filesystem;

namespace expt::io {

std::string utc_time_now() { return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::time(nullptr))); }

DirectoryLock::DirectoryLock(const fs::path& dir, const std::string& lock_name, const std::string& holder,
                             const std::string& advice) {
  const fs::path file = dir / lock_name;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot create lock file {}", file.string()));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(
        fmt::format("{} is in use by another {} (lock {} is held){}", dir.string(), holder, file.string(), advice));
  }
}

DirectoryLock::DirectoryLock(DirectoryLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);
}

TrialDirectory::TrialDirectory(fs::path dir) : dir_(std::move(dir)) {}

fs::path TrialDirectory::segment_path(int attempt, std::int64_t first_step) const {
  return dir_ / "metrics" / fmt::format("seg-{}-{}.h5", attempt, first_step);
}

int TrialDirectory::count_attempts() const {
  std::ifstream in(dir_ / "attempts.jsonl");
  std::string line;
  int starts = 0;
  while (std::getline(in, line))
    if (line.find("\"event\":\"start\"") != std::string::npos) ++starts;
  return starts;
}

int TrialDirectory::count_pauses() const {
  std::ifstream in(dir_ / "attempts.jsonl");
  std::string line;
  int pauses = 0;
  while (std::getline(in, line))
    if (line.find("\"event\":\"paused\"") != std::string::npos) ++pauses;
  return pauses;
}

nlohmann::json TrialDirectory::last_attempt_event(const std::string& event) const {
  std::ifstream in(dir_ / "attempts.jsonl");
  nlohmann::json last;
  const std::string needle = "\"event\":\"" + event + "\"";
  for (std::string line; std::getline(in, line);) {
    if (line.find(needle) == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);  // a torn line is skipped
    if (j.is_object()) last = std::move(j);
  }
  return last;
}

std::optional<TrialSummary> TrialDirectory::read_result() const {
  if (!fs::exists(result_path())) return std::nullopt;
  try {
    return read_summary(result_path());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<std::string> TrialDirectory::quarantined_files() const {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(dir_ / "quarantine", ec)) return names;
  for (const auto& e : fs::directory_iterator(dir_ / "quarantine", ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void TrialDirectory::create() const {
  fs::create_directories(dir_ / "metrics");
  fs::create_directories(dir_ / "checkpoints");
}

DirectoryLock TrialDirectory::lock() const {
  return DirectoryLock(dir_, ".lock", "expt process", "; refusing to run twice on one directory");
}

std::vector<std::string> TrialDirectory::quarantine_damaged() const {
  std::vector<std::string> moved;
  if (fs::exists(result_path())) {
    try {
      read_summary(result_path());
    } catch (const std::exception& e) {
      moved.push_back(
          fmt::format("unreadable result {} ({})", move_to_quarantine(result_path(), dir_).string(), e.what()));
    }
  }
  for (const auto& q : quarantine_unreadable_segments(dir_))
    moved.push_back(fmt::format("unreadable metrics segment {}", q.string()));
  return moved;
}

std::vector<fs::path> TrialDirectory::quarantine_incomplete_checkpoints() const {
  return checkpoints().quarantine_incomplete();
}

std::string TrialDirectory::claim(const config::TrialConfig& cfg, bool write_if_missing) const {
  const std::string hash = config::config_hash(cfg);
  if (const auto existing = read_directory_trial(dir_)) {
    if (existing->id != hash)
      throw std::runtime_error(
          fmt::format("{} already holds trial {} (a different config from this one, {}); use another --out",
                      dir_.string(), existing->id.empty() ? "of another config schema" : existing->id, hash));
    return existing->legacy_id;
  }
  if (write_if_missing) write_file_atomic(dir_ / "trial.yaml", trial_yaml_text(cfg));
  return "";
}

void TrialDirectory::append_attempt_event(int attempt, const std::string& event, std::int64_t step, int ranks,
                                          const nlohmann::json& extra) const {
  nlohmann::json j = {{"attempt", attempt},         {"event", event}, {"step", step},
                      {"time_utc", utc_time_now()}, {"ranks", ranks}, {"host_pid", static_cast<long>(::getpid())}};
  j.update(extra);
  append_line_durable(dir_ / "attempts.jsonl", j.dump());
}

ConsolidationReport TrialDirectory::consolidate(const ResultInfo& info, const TrialSummary& summary, int attempt,
                                                std::int64_t step, int ranks) const {
  ConsolidationReport report = write_result(dir_, info, summary);
  for (const auto& p : report.skipped_unreadable)
    append_attempt_event(attempt, "segment_skipped", step, ranks, {{"path", p.string()}, {"reason", "will not open"}});
  return report;
}

}  // namespace expt::io
