// The thread that keeps a sweep process visibly alive (core/io/heartbeat.hpp) and, for a worker,
// renews the lease of the trial it trains (core/io/trial_lease.hpp). It beats every
// io::kHeartbeatPeriodS and renews every ttl/4; the training thread asks lease_held() at each step
// boundary and before it commits anything, so a worker whose renewal fails (the lease expired
// while the process was stopped, or another worker took it) stops without writing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/io/heartbeat.hpp"
#include "core/io/trial_lease.hpp"

namespace expt::experiments {

class HeartbeatThread {
 public:
  // `leases` (may be null: an `expt sweep` coordinator holds none) must outlive this object.
  HeartbeatThread(std::filesystem::path study_dir, std::string kind, const io::WorkerIdentity& me, std::string command,
                  io::TrialLeases* leases);
  ~HeartbeatThread();  // a last beat with state "stopped" unless finish() said otherwise
  HeartbeatThread(const HeartbeatThread&) = delete;
  HeartbeatThread& operator=(const HeartbeatThread&) = delete;

  // The trial trained now (shown in the heartbeat); with a lease, that lease is renewed from now on.
  void start_trial(const std::string& trial, std::optional<io::HeldLease> lease);
  // The trial's latest step, training loss and measured seconds per step (for `expt status`).
  void progress(std::int64_t step, double loss, double step_s);
  // No trial any more; returns its lease as last renewed (nullopt when none or lost).
  std::optional<io::HeldLease> end_trial();
  // The current lease is still ours: renewed in time and not taken over.
  bool lease_held();
  // The last beat, with state "finished" (nothing left) or "stopped" (a signal); ends the thread.
  void finish(const std::string& state);

 private:
  void run();
  void beat_locked();

  std::filesystem::path dir_;
  io::TrialLeases* leases_;
  std::mutex mu_;
  std::condition_variable cv_;
  io::HeartbeatRecord record_;
  std::optional<io::HeldLease> lease_;
  bool lease_lost_ = false;
  double last_renew_s_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace expt::experiments
