// The collective watchdog (core/comm/watchdog.hpp): fires once when an armed operation outlasts
// the timeout, naming it; never fires for operations that end in time or when disabled. The
// end-to-end case (a stalled rank under mpirun aborts the job) is tests/scripts/sweep_faults.sh.
#include "core/comm/watchdog.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace comm = expt::comm;

namespace {

struct Fired {
  std::mutex mutex;
  std::vector<std::string> messages;
  void add(const std::string& m) {
    std::lock_guard<std::mutex> lock(mutex);
    messages.push_back(m);
  }
  std::vector<std::string> get() {
    std::lock_guard<std::mutex> lock(mutex);
    return messages;
  }
};

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

TEST_CASE("watchdog fires once for an operation that outlasts the timeout", "[watchdog]") {
  Fired fired;
  comm::Watchdog dog(0.05, [&](const std::string& m) { fired.add(m); });
  dog.arm("rank 1 of trial abc inside barrier");
  for (int i = 0; i < 400 && fired.get().empty(); ++i) sleep_ms(5);
  sleep_ms(100);  // it must not fire a second time for the same operation
  dog.disarm();
  const auto m = fired.get();
  REQUIRE(m.size() == 1);
  CHECK(m[0].find("rank 1 of trial abc inside barrier: no progress for") == 0);
}

TEST_CASE("watchdog stays quiet for operations that end in time, and when disabled", "[watchdog]") {
  Fired fired;
  {
    comm::Watchdog dog(0.5, [&](const std::string& m) { fired.add(m); });
    for (int i = 0; i < 20; ++i) {  // 20 x 40 ms = 0.8 s in all, each well under the timeout
      dog.arm("op " + std::to_string(i));
      sleep_ms(40);
      dog.disarm();
    }
  }
  {
    comm::Watchdog off(0, [&](const std::string& m) { fired.add(m); });
    off.arm("never watched");
    sleep_ms(50);
  }
  CHECK(fired.get().empty());
}

TEST_CASE("watched communicator arms the watchdog around each collective and forwards it", "[watchdog]") {
  Fired fired;
  comm::Watchdog dog(0.05, [&](const std::string& m) { fired.add(m); });
  comm::LocalCommunicator local;
  comm::WatchedCommunicator watched(local, dog, "rank 0 of trial t");
  std::vector<double> x = {1.0, 2.0};
  watched.allreduce_sum(std::span<double>(x));
  watched.barrier();
  sleep_ms(150);  // disarmed after each call: nothing fires while idle
  CHECK(fired.get().empty());
  CHECK(x == std::vector<double>{1.0, 2.0});
  CHECK(watched.rank() == 0);
  CHECK(watched.size() == 1);
}
