#include "core/io/trial_lease.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "core/io/atomic_file.hpp"

namespace fs = std::filesystem;

namespace expt::io {

namespace {

double positive_env(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(x > 0) || !std::isfinite(x))
    throw std::invalid_argument(fmt::format("{}={} is not a positive number of seconds", name, v));
  return x;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown-host";
  return buf;
}

}  // namespace

LeaseSettings LeaseSettings::from_environment() {
  LeaseSettings s;
  s.ttl_s = positive_env("EXPT_LEASE_TTL_S", s.ttl_s);
  s.skew_s = positive_env("EXPT_LEASE_SKEW_S", s.skew_s);
  return s;
}

WorkerIdentity WorkerIdentity::of_this_process() {
  WorkerIdentity w;
  w.host = host_name();
  w.pid = static_cast<long>(::getpid());
  std::random_device rd;
  w.id = fmt::format("{}-{}-{:08x}", w.host, w.pid, rd());
  return w;
}

double lease_clock_now() {
  static const double offset = [] {
    const char* v = std::getenv("EXPT_TEST_CLOCK_OFFSET_S");
    return v != nullptr ? std::strtod(v, nullptr) : 0.0;
  }();
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() + offset;
}

std::string utc_time_of(double unix_s) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(static_cast<std::time_t>(unix_s)));
}

TrialLeases::TrialLeases(fs::path leases_dir, WorkerIdentity me, LeaseSettings settings, std::function<double()> now)
    : dir_(std::move(leases_dir)), me_(std::move(me)), settings_(settings), now_(std::move(now)) {
  fs::create_directories(dir_);
}

fs::path TrialLeases::file_of(const std::string& trial, std::int64_t generation) const {
  return trial_dir(trial) / fmt::format("{}.lease", generation);
}

std::int64_t TrialLeases::highest_generation(const std::string& trial) const {
  std::int64_t best = 0;
  std::error_code ec;
  for (fs::directory_iterator it(trial_dir(trial), ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".lease") continue;
    const std::string stem = p.stem().string();
    if (stem.empty() || !std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    best = std::max<std::int64_t>(best, std::stoll(stem));
  }
  return best;
}

std::optional<LeaseRecord> TrialLeases::read(const std::string& trial, std::int64_t generation) const {
  const fs::path path = file_of(trial, generation);
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  LeaseRecord r;
  r.trial = trial;
  r.generation = generation;
  try {
    const nlohmann::json j = nlohmann::json::parse(ss.str());
    r.worker = j.at("worker").get<std::string>();
    r.host = j.at("host").get<std::string>();
    r.pid = j.at("pid").get<long>();
    r.acquired_s = j.at("acquired_s").get<double>();
    r.renewed_s = j.at("renewed_s").get<double>();
    r.expires_s = j.at("expires_s").get<double>();
    r.ttl_s = j.at("ttl_s").get<double>();
    r.released = j.at("released").get<bool>();
    if (j.at("generation").get<std::int64_t>() != generation || j.at("trial").get<std::string>() != trial)
      throw std::runtime_error("names another lease");
  } catch (const std::exception&) {
    // Truncated or garbage: expires ttl after its last modification.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    r = LeaseRecord{};
    r.trial = trial;
    r.generation = generation;
    r.readable = false;
    r.renewed_s = static_cast<double>(st.st_mtim.tv_sec) + 1e-9 * static_cast<double>(st.st_mtim.tv_nsec);
    r.expires_s = r.renewed_s + settings_.ttl_s;
  }
  return r;
}

std::optional<LeaseRecord> TrialLeases::current(const std::string& trial) const {
  // A generation removed between listing and reading was superseded: list again.
  for (int tries = 0; tries < 5; ++tries) {
    const std::int64_t g = highest_generation(trial);
    if (g == 0) return std::nullopt;
    if (auto r = read(trial, g)) return r;
  }
  return std::nullopt;
}

std::vector<LeaseRecord> TrialLeases::all() const {
  std::vector<LeaseRecord> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory())
      if (auto r = current(it->path().filename().string())) out.push_back(std::move(*r));
  std::sort(out.begin(), out.end(), [](const LeaseRecord& a, const LeaseRecord& b) { return a.trial < b.trial; });
  return out;
}

bool TrialLeases::takeable(const LeaseRecord& lease) const {
  return lease.released || lease.expires_s + settings_.skew_s < now_();
}

std::string TrialLeases::content(const HeldLease& lease, double renewed_s, bool released) const {
  const nlohmann::json j = {{"trial", lease.trial},
                            {"generation", lease.generation},
                            {"worker", me_.id},
                            {"host", me_.host},
                            {"pid", me_.pid},
                            {"acquired_s", lease.acquired_s},
                            {"renewed_s", renewed_s},
                            {"expires_s", lease.expires_s},
                            {"acquired_utc", utc_time_of(lease.acquired_s)},
                            {"renewed_utc", utc_time_of(renewed_s)},
                            {"ttl_s", settings_.ttl_s},
                            {"released", released}};
  return j.dump() + "\n";
}

std::optional<HeldLease> TrialLeases::try_acquire(const std::string& trial) {
  return try_acquire(trial, current(trial));
}

std::optional<HeldLease> TrialLeases::try_acquire(const std::string& trial, const std::optional<LeaseRecord>& cur) {
  if (cur && !takeable(*cur)) return std::nullopt;
  fs::create_directories(trial_dir(trial));
  HeldLease held;
  held.trial = trial;
  // The generation after the one judged free, never after one listed later: a worker that found
  // no lease while another was creating generation 1 must lose the race (link fails), not take
  // generation 2 over a lease it never judged takeable.
  held.generation = (cur ? cur->generation : 0) + 1;
  held.acquired_s = now_();
  held.expires_s = held.acquired_s + settings_.ttl_s;
  const fs::path final_path = file_of(trial, held.generation);
  // The one worker whose link(2) creates the generation owns it.
  if (!write_file_once(final_path, content(held, held.acquired_s, false), ".tmp." + me_.id)) return std::nullopt;
  // A lower generation is removed only after a higher one exists, so a link that succeeded on a
  // generation already superseded (this worker read the lease long ago) shows here.
  if (highest_generation(trial) != held.generation) {
    ::unlink(final_path.c_str());
    return std::nullopt;
  }
  // Older generations are history; the highest one is the lease.
  for (std::int64_t g = held.generation - 1; g >= 1; --g) {
    std::error_code ec;
    if (!fs::remove(file_of(trial, g), ec)) break;
  }
  return held;
}

bool TrialLeases::valid(const HeldLease& lease) const {
  return now_() < lease.expires_s - settings_.renew_every_s() && highest_generation(lease.trial) == lease.generation;
}

bool TrialLeases::renew(HeldLease& lease) {
  if (!valid(lease)) return false;
  const auto cur = read(lease.trial, lease.generation);
  if (!cur || !cur->readable || cur->worker != me_.id || cur->released) return false;
  const double now = now_();
  HeldLease next = lease;
  next.expires_s = now + settings_.ttl_s;
  const fs::path path = file_of(lease.trial, lease.generation);
  write_file_atomic(path, content(next, now, false), ".tmp." + me_.id);
  lease = next;
  return true;
}

void TrialLeases::release(const HeldLease& lease) {
  if (!valid(lease)) return;
  const auto cur = read(lease.trial, lease.generation);
  if (!cur || cur->worker != me_.id) return;
  const fs::path path = file_of(lease.trial, lease.generation);
  write_file_atomic(path, content(lease, now_(), true), ".tmp." + me_.id);
}

}  // namespace expt::io
