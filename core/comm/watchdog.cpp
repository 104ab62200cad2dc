#include "core/comm/watchdog.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace expt::comm {

Watchdog::Watchdog(double timeout_s, std::function<void(const std::string&)> on_timeout)
    : timeout_s_(timeout_s), on_timeout_(std::move(on_timeout)) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Watchdog::arm(const std::string& what) {
  if (timeout_s_ <= 0) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = true;
    armed_at_ = std::chrono::steady_clock::now();
    what_ = what;
  }
  wake_.notify_one();
}

void Watchdog::disarm() {
  if (timeout_s_ <= 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
}

void Watchdog::loop() {
  const auto timeout =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s_));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    if (!armed_) {
      wake_.wait(lock);
      continue;
    }
    // Sleep until the armed operation's deadline; a disarm/re-arm in between moves the deadline.
    const auto deadline = armed_at_ + timeout;
    if (wake_.wait_until(lock, deadline) != std::cv_status::timeout) continue;
    if (!armed_ || stop_ || std::chrono::steady_clock::now() < armed_at_ + timeout) continue;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - armed_at_).count();
    char times[96];
    std::snprintf(times, sizeof times, ": no progress for %.1f s (timeout %g s)", waited, timeout_s_);
    const std::string message = what_ + times;
    armed_ = false;  // fires once per armed operation
    lock.unlock();
    on_timeout_(message);
    lock.lock();
  }
}

WatchedCommunicator::WatchedCommunicator(Communicator& inner, Watchdog& watchdog, std::string label)
    : inner_(inner), watchdog_(watchdog), label_(std::move(label)) {
  if (const char* v = std::getenv("EXPT_TEST_STALL_COLLECTIVE"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    stall_rank_ = static_cast<int>(std::strtol(v, &end, 10));
    if (end != nullptr && *end == ':') stall_call_ = std::strtoll(end + 1, nullptr, 10);
  }
}

template <class Fn>
void WatchedCommunicator::watched(const char* op, Fn&& fn) {
  ++calls_;
  watchdog_.arm(label_ + " inside " + op + " (collective #" + std::to_string(calls_) + ")");
  struct Disarm {  // also when the collective throws (an MPI error reported as an exception)
    Watchdog& dog;
    ~Disarm() { dog.disarm(); }
  } disarm{watchdog_};
  if (stall_rank_ == inner_.rank() && stall_call_ == calls_) {
    std::fprintf(stderr, "expt: test switch EXPT_TEST_STALL_COLLECTIVE: %s stalls in collective #%lld\n",
                 label_.c_str(), static_cast<long long>(calls_));
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  fn();
}

void WatchedCommunicator::allreduce_sum(std::span<float> data) {
  watched("allreduce_sum(float)", [&] { inner_.allreduce_sum(data); });
}
void WatchedCommunicator::allreduce_sum(std::span<double> data) {
  watched("allreduce_sum(double)", [&] { inner_.allreduce_sum(data); });
}
void WatchedCommunicator::allreduce_sum(std::span<std::int64_t> data) {
  watched("allreduce_sum(int64)", [&] { inner_.allreduce_sum(data); });
}
void WatchedCommunicator::broadcast(std::span<float> data, int root) {
  watched("broadcast(float)", [&] { inner_.broadcast(data, root); });
}
void WatchedCommunicator::broadcast(std::span<std::int64_t> data, int root) {
  watched("broadcast(int64)", [&] { inner_.broadcast(data, root); });
}
void WatchedCommunicator::broadcast(std::span<double> data, int root) {
  watched("broadcast(double)", [&] { inner_.broadcast(data, root); });
}
void WatchedCommunicator::barrier() {
  watched("barrier", [&] { inner_.barrier(); });
}
void WatchedCommunicator::wait(Pending pending) {
  watched("wait(allreduce_sum)", [&] { inner_.wait(pending); });
}
void WatchedCommunicator::allgather(std::span<const float> send, std::span<float> recv) {
  watched("allgather(float)", [&] { inner_.allgather(send, recv); });
}
void WatchedCommunicator::allgather(std::span<const double> send, std::span<double> recv) {
  watched("allgather(double)", [&] { inner_.allgather(send, recv); });
}

}  // namespace expt::comm
