// Watchdog for blocking collectives: a hang becomes a crash (docs/reliability.md, decision 33).
//
// A rank that stops answering (stuck in a kernel, a dead peer that the transport does not notice,
// a deadlock) leaves every other rank of its group blocked inside a collective forever, and a sweep
// of days silently stops. WatchedCommunicator arms a Watchdog around every collective of the
// Communicator it wraps; a background thread fires when one collective has lasted longer than the
// timeout and calls the action given (in a sweep: print which rank of which trial was stuck where,
// then MPI_Abort the whole job). The relaunched sweep resumes from the last committed checkpoints.
//
// Cost: one mutex lock and a condition-variable notify per collective (a few per training step).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/comm/communicator.hpp"

namespace expt::comm {

class Watchdog {
 public:
  // timeout_s <= 0 disables the watchdog (no thread). on_timeout gets a one-line description of
  // the stuck operation and the time waited; it is called from the watchdog thread, once per armed
  // operation, and normally does not return (a sweep aborts the job).
  Watchdog(double timeout_s, std::function<void(const std::string&)> on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Marks the start and the end of one blocking operation; `what` names it in the message.
  void arm(const std::string& what);
  void disarm();
  double timeout_s() const { return timeout_s_; }

 private:
  void loop();

  double timeout_s_;
  std::function<void(const std::string&)> on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool armed_ = false, stop_ = false;
  std::chrono::steady_clock::time_point armed_at_;
  std::string what_;
  std::thread thread_;
};

// A Communicator whose every collective runs under a Watchdog. `label` names this rank in the
// messages (e.g. "rank 1 of trial 0123abcd (world rank 2)"); set_label changes it between trials.
//
// Test-only switch EXPT_TEST_STALL_COLLECTIVE="<rank>:<n>": group rank <rank> sleeps (forever)
// inside its n-th collective (counting from 1), with the watchdog armed, as a stuck rank would.
class WatchedCommunicator final : public Communicator {
 public:
  WatchedCommunicator(Communicator& inner, Watchdog& watchdog, std::string label);
  void set_label(std::string label) { label_ = std::move(label); }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string kind() const override { return inner_.kind(); }
  void allreduce_sum(std::span<float> data) override;
  void allreduce_sum(std::span<double> data) override;
  void allreduce_sum(std::span<std::int64_t> data) override;
  void broadcast(std::span<float> data, int root) override;
  void broadcast(std::span<std::int64_t> data, int root) override;
  void broadcast(std::span<double> data, int root) override;
  void barrier() override;
  // Non-blocking reductions start and progress unwatched (they return at once); the wait, where a
  // stuck peer would hang this rank, is watched like a blocking collective.
  Pending start_allreduce_sum(std::span<float> data) override { return inner_.start_allreduce_sum(data); }
  void wait(Pending pending) override;
  bool test(Pending pending) override { return inner_.test(pending); }
  void progress() override { inner_.progress(); }
  void allgather(std::span<const float> send, std::span<float> recv) override;
  void allgather(std::span<const double> send, std::span<double> recv) override;

 private:
  template <class Fn>
  void watched(const char* op, Fn&& fn);

  Communicator& inner_;
  Watchdog& watchdog_;
  std::string label_;
  std::int64_t calls_ = 0;
  int stall_rank_ = -1;
  std::int64_t stall_call_ = -1;
};

}  // namespace expt::comm
