#include "experiments/sweep/heartbeat_thread.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace expt::experiments {

HeartbeatThread::HeartbeatThread(std::filesystem::path study_dir, std::string kind, const io::WorkerIdentity& me,
                                 std::string command, io::TrialLeases* leases)
    : dir_(std::move(study_dir)), leases_(leases) {
  record_.kind = std::move(kind);
  record_.id = me.id;
  record_.host = me.host;
  record_.pid = me.pid;
  record_.command = std::move(command);
  record_.started_s = io::lease_clock_now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    beat_locked();
  }
  thread_ = std::thread([this] { run(); });
}

HeartbeatThread::~HeartbeatThread() {
  if (thread_.joinable()) finish("stopped");
}

void HeartbeatThread::beat_locked() {
  record_.beat_s = io::lease_clock_now();
  try {
    io::write_heartbeat(dir_, record_);
  } catch (const std::exception& e) {
    // A full or unreachable disk: the process looks stalled, which is the safe side.
    std::fprintf(stderr, "expt: warning: heartbeat not written: %s\n", e.what());
  }
}

void HeartbeatThread::run() {
  const double renew_every = leases_ != nullptr ? leases_->settings().renew_every_s() : io::kHeartbeatPeriodS;
  const double tick = std::min(io::kHeartbeatPeriodS, renew_every) / 2;
  std::unique_lock<std::mutex> lock(mu_);
  double last_beat = record_.beat_s;
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::duration<double>(tick));
    if (stop_) break;
    const double now = io::lease_clock_now();
    if (lease_ && !lease_lost_ && now - last_renew_s_ >= renew_every) {
      try {
        lease_lost_ = !leases_->renew(*lease_);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "expt: warning: lease of %s not renewed: %s\n", lease_->trial.c_str(), e.what());
      }
      last_renew_s_ = now;
    }
    if (now - last_beat >= io::kHeartbeatPeriodS) {
      beat_locked();
      last_beat = record_.beat_s;
    }
  }
}

void HeartbeatThread::start_trial(const std::string& trial, std::optional<io::HeldLease> lease) {
  std::lock_guard<std::mutex> lock(mu_);
  record_.trial = trial;
  record_.step = -1;
  record_.loss = 0;
  record_.step_s = 0;
  lease_ = std::move(lease);
  lease_lost_ = false;
  last_renew_s_ = io::lease_clock_now();
  beat_locked();
}

void HeartbeatThread::progress(std::int64_t step, double loss, double step_s) {
  std::lock_guard<std::mutex> lock(mu_);
  record_.step = step;
  record_.loss = loss;
  record_.step_s = step_s;
}

std::optional<io::HeldLease> HeartbeatThread::end_trial() {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<io::HeldLease> out;
  if (lease_ && !lease_lost_) out = lease_;
  lease_.reset();
  record_.trial.clear();
  record_.step = -1;
  return out;
}

bool HeartbeatThread::lease_held() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!lease_) return true;
  if (lease_lost_) return false;
  return leases_->valid(*lease_);
}

void HeartbeatThread::finish(const std::string& state) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
    record_.state = state;
    record_.trial.clear();
    record_.step = -1;
    beat_locked();
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace expt::experiments
