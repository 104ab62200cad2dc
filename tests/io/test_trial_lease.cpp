// core/io/trial_lease: the lease protocol of `expt worker` (docs/distributed.md "Workers and
// leases"): exclusive creation, renewal, expiry and takeover, damaged lease files, a dead holder,
// and holders whose clocks disagree by a few seconds. Time is injected, so nothing sleeps.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "core/io/trial_lease.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
using expt::io::HeldLease;
using expt::io::LeaseSettings;
using expt::io::TrialLeases;
using expt::io::WorkerIdentity;

namespace {

WorkerIdentity worker(const std::string& name) {
  std::string host = "host-";
  host.append(name);
  return WorkerIdentity{name, host, 100};
}

// A worker whose clock reads `*now + offset`.
TrialLeases leases_at(const fs::path& dir, const std::string& name, const std::shared_ptr<double>& now,
                      double offset = 0) {
  return TrialLeases(dir, worker(name), LeaseSettings{10, 3}, [now, offset] { return *now + offset; });
}

}  // namespace

TEST_CASE("a free trial is leased by exactly one of two workers", "[lease]") {
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(1000);
  TrialLeases a = leases_at(tmp.path(), "a", now), b = leases_at(tmp.path(), "b", now);
  const auto held = a.try_acquire("t1");
  REQUIRE(held);
  CHECK(held->generation == 1);
  CHECK_FALSE(b.try_acquire("t1"));
  const auto cur = b.current("t1");
  REQUIRE(cur);
  CHECK(cur->worker == "a");
  CHECK(cur->host == "host-a");
  CHECK(cur->expires_s == 1010);
  CHECK(b.try_acquire("t2"));  // another trial is free
}

TEST_CASE("a worker that saw no lease loses to one that took it meanwhile", "[lease]") {
  // b lists the trial (no lease), a takes generation 1, then b tries on what it saw: b must not
  // take generation 2 over a's fresh lease (the race the threaded test below hits only sometimes).
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(1000);
  TrialLeases a = leases_at(tmp.path(), "a", now), b = leases_at(tmp.path(), "b", now);
  const auto seen_by_b = b.current("t");
  CHECK_FALSE(seen_by_b);
  REQUIRE(a.try_acquire("t"));
  CHECK_FALSE(b.try_acquire("t", seen_by_b));
  CHECK(b.current("t")->worker == "a");
  // Likewise after a release: b saw generation 1 released, a took generation 2 meanwhile.
  a.release(*a.try_acquire("u"));
  const auto released = b.current("u");
  REQUIRE(released);
  CHECK(released->released);
  REQUIRE(a.try_acquire("u"));
  CHECK_FALSE(b.try_acquire("u", released));
  CHECK(b.current("u")->generation == 2);
}

TEST_CASE("many threads racing for one lease: one wins", "[lease]") {
  // 20 rounds, each a fresh trial: a worker that finds no lease while another is creating
  // generation 1 must lose, not take generation 2 (the race a slow sanitizer build exposed).
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(1000);
  for (int round = 0; round < 20; ++round) {
    std::string trial = "t";  // (append: GCC 12 warns falsely on "t" + std::string at -O3)
    trial.append(std::to_string(round));
    std::vector<int> won(8, 0);
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
      threads.emplace_back([&, i] {
        std::string name = "w";
        name.append(std::to_string(i));
        TrialLeases l = leases_at(tmp.path(), name, now);
        won[static_cast<std::size_t>(i)] = l.try_acquire(trial) ? 1 : 0;
      });
    for (auto& t : threads) t.join();
    int total = 0;
    for (int w : won) total += w;
    INFO("round " << round);
    CHECK(total == 1);
  }
}

TEST_CASE("renewal keeps a lease, expiry lets another worker take it over", "[lease]") {
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(1000);
  TrialLeases a = leases_at(tmp.path(), "a", now), b = leases_at(tmp.path(), "b", now);
  auto held = a.try_acquire("t");
  REQUIRE(held);
  *now = 1007;  // ttl 10: renewed in time
  REQUIRE(a.renew(*held));
  CHECK(held->expires_s == 1017);
  *now = 1019;  // past expiry, within the skew bound (3 s): still not takeable
  CHECK_FALSE(b.try_acquire("t"));
  CHECK_FALSE(a.valid(*held));  // but the holder no longer trusts it: it must not commit
  CHECK_FALSE(a.renew(*held));  // and may not renew an expired lease
  *now = 1020.5;
  const auto taken = b.try_acquire("t");
  REQUIRE(taken);
  CHECK(taken->generation == 2);
  CHECK_FALSE(fs::exists(tmp.path() / "t" / "1.lease"));  // history removed
  // The old holder, even with a clock that says its lease is fresh, sees the higher generation.
  *now = 1000;
  CHECK_FALSE(a.valid(*held));
}

TEST_CASE("a released lease is taken at once, a lease of another holder is not released", "[lease]") {
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(1000);
  TrialLeases a = leases_at(tmp.path(), "a", now), b = leases_at(tmp.path(), "b", now);
  const auto held = a.try_acquire("t");
  REQUIRE(held);
  a.release(*held);
  CHECK(b.current("t")->released);
  const auto taken = b.try_acquire("t");
  REQUIRE(taken);
  a.release(*held);  // stale: generation 1 is gone, nothing changes
  CHECK_FALSE(b.current("t")->released);
  CHECK(b.valid(*taken));
}

TEST_CASE("a truncated or garbage lease file counts as expired ttl after its last change", "[lease]") {
  expt::io::test::TempDir tmp;
  for (const char* content : {"{\"trial\": \"t\", \"gener", "\x01\x02garbage"}) {
    fs::remove_all(tmp.path() / "t");
    fs::create_directories(tmp.path() / "t");
    std::ofstream(tmp.path() / "t" / "1.lease") << content;
    const double mtime = expt::io::lease_clock_now();
    auto now = std::make_shared<double>(mtime + 1);
    TrialLeases b = leases_at(tmp.path(), "b", now);
    const auto cur = b.current("t");
    REQUIRE(cur);
    CHECK_FALSE(cur->readable);
    CHECK_FALSE(b.try_acquire("t"));  // maybe a live holder's file damaged by the disk: wait
    *now = mtime + 10 + 3 + 1;        // ttl + skew bound later
    const auto taken = b.try_acquire("t");
    REQUIRE(taken);
    CHECK(taken->generation == 2);
    CHECK(b.current("t")->readable);
  }
}

TEST_CASE("a lease left by a dead host is taken over after its expiry", "[lease]") {
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(5000);
  {
    // The dead host: acquired, renewed once, then nothing (its process and host are gone).
    TrialLeases dead(tmp.path(), WorkerIdentity{"dead", "gone.example", 4242}, LeaseSettings{10, 3},
                     [now] { return *now; });
    auto held = dead.try_acquire("t");
    REQUIRE(held);
    *now = 5005;
    REQUIRE(dead.renew(*held));
  }
  TrialLeases b = leases_at(tmp.path(), "b", now);
  *now = 5017.9;  // renewed at 5005, expires 5015, + skew 3
  CHECK_FALSE(b.try_acquire("t"));
  *now = 5018.1;
  CHECK(b.try_acquire("t"));
}

TEST_CASE("clocks a few seconds apart: no takeover before the holder's own expiry", "[lease]") {
  expt::io::test::TempDir tmp;
  auto now = std::make_shared<double>(1000);  // true time
  // The taker's clock runs `skew` seconds ahead of the holder's (up to 2.9 s either way, within the
  // 3 s bound): at no moment may the holder still trust its lease while the taker could take it.
  for (const double skew : {-2.9, -1.5, 0.0, 1.5, 2.9}) {
    fs::remove_all(tmp.path() / "t");
    *now = 1000;
    TrialLeases holder = leases_at(tmp.path(), "h", now, -skew / 2), taker = leases_at(tmp.path(), "x", now, skew / 2);
    auto held = holder.try_acquire("t");
    REQUIRE(held);
    // The holder stops trusting its lease (valid() false) at its expiry minus ttl/4 by its clock;
    // the taker may take over only after expiry + skew bound by its clock. In true time:
    const double holder_stops = held->expires_s - 2.5 + skew / 2;
    const double taker_may = held->expires_s + 3 - skew / 2;
    CHECK(holder_stops < taker_may);
    for (double t = 1000; t < 1020; t += 0.25) {
      *now = t;
      if (holder.valid(*held)) CHECK_FALSE(taker.takeable(*taker.current("t")));
    }
  }
}
