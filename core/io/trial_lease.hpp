// Leases: which worker trains which trial of a sweep directory shared by independent workers
// (`expt worker`, docs/distributed.md "Workers and leases"). The whole protocol lives here.
//
//   <study dir>/leases/<trial id>/<generation>.lease   JSON, one file per holder, generation 1, 2, ...
//
// The lease of a trial is its file of highest generation:
//   {"trial", "generation", "worker", "host", "pid", "acquired_s", "renewed_s", "expires_s",
//    "acquired_utc", "renewed_utc", "ttl_s", "released"}        (times: seconds since the epoch)
// - Acquire: a trial whose lease is missing, released, or expired (expires_s + skew bound < now) is
//   taken by creating generation g+1 with link(2) of a fully written temporary file: link fails
//   with EEXIST when another worker created it first, on local disks and on NFS (the server decides),
//   so exactly one of several racing workers wins a generation. Older generations are then removed.
// - Renew: only the holder rewrites its own generation (temporary file + rename), every ttl/4, and
//   only while its lease is still valid by its own clock (now < expires_s - ttl/4) and no higher
//   generation exists; otherwise the lease is lost.
// - Release: the holder rewrites its generation with "released": true; the next worker takes g+1 at
//   once.
// - A lease file that does not parse (truncated, garbage) counts as expired once its mtime is older
//   than ttl + skew bound.
// Guarantee: with clocks that differ by less than the skew bound, a lease is taken over only after
// its holder could last have renewed it, so a holder that renews (or stops at its step boundary once
// renewal fails) never trains at the same time as the next holder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace expt::io {

struct LeaseSettings {
  double ttl_s = 30;  // a lease not renewed for this long expires
  double skew_s = 5;  // the bound on clock differences between hosts sharing the directory
  // EXPT_LEASE_TTL_S and EXPT_LEASE_SKEW_S override the defaults (positive numbers).
  static LeaseSettings from_environment();
  double renew_every_s() const { return ttl_s / 4; }
};

// Who holds leases: one per worker process (an MPI worker: its rank 0).
struct WorkerIdentity {
  std::string id;  // "<host>-<pid>-<8 random hex digits>": unique across hosts and pid reuse
  std::string host;
  long pid = 0;
  static WorkerIdentity of_this_process();
};

// Seconds since the epoch by this host's clock; EXPT_TEST_CLOCK_OFFSET_S (test-only) shifts it to
// simulate a host whose clock is off.
double lease_clock_now();

struct LeaseRecord {
  std::string trial;
  std::int64_t generation = 0;
  bool readable = true;  // false: the file did not parse; only generation and expires_s are set
  std::string worker, host;
  long pid = 0;
  double acquired_s = 0, renewed_s = 0, expires_s = 0, ttl_s = 0;
  bool released = false;
};

// A lease this process holds.
struct HeldLease {
  std::string trial;
  std::int64_t generation = 0;
  double acquired_s = 0;
  double expires_s = 0;  // of the last successful renewal
};

class TrialLeases {
 public:
  // `leases_dir` is <study dir>/leases (created when missing). `now` is the clock (tests inject one).
  TrialLeases(std::filesystem::path leases_dir, WorkerIdentity me, LeaseSettings settings,
              std::function<double()> now = lease_clock_now);

  const LeaseSettings& settings() const { return settings_; }
  const WorkerIdentity& me() const { return me_; }

  // The trial's current lease (highest generation), nullopt when it never had one.
  std::optional<LeaseRecord> current(const std::string& trial) const;
  // Every trial's current lease, sorted by trial id.
  std::vector<LeaseRecord> all() const;
  // A lease another worker may take now: released, or expired beyond the skew bound.
  bool takeable(const LeaseRecord& lease) const;

  // Takes the trial's lease when it is free or takeable; nullopt when another worker holds it or
  // won the race for it.
  std::optional<HeldLease> try_acquire(const std::string& trial);
  // The same, judged on a lease read earlier (`seen`, nullopt: the trial had none): succeeds only
  // when `seen` is takeable and no other worker has taken the trial since it was read.
  std::optional<HeldLease> try_acquire(const std::string& trial, const std::optional<LeaseRecord>& seen);
  // Extends the lease by ttl; false (and nothing written) when it is lost: a higher generation
  // exists, the file is gone or names another worker, or its expiry has (nearly) passed.
  bool renew(HeldLease& lease);
  // Still ours by our clock (now < expires - ttl/4) and no higher generation: safe to commit.
  bool valid(const HeldLease& lease) const;
  // Marks the lease released (only when it is still ours); the next worker may take it at once.
  void release(const HeldLease& lease);

 private:
  std::filesystem::path trial_dir(const std::string& trial) const { return dir_ / trial; }
  std::filesystem::path file_of(const std::string& trial, std::int64_t generation) const;
  std::optional<LeaseRecord> read(const std::string& trial, std::int64_t generation) const;
  std::int64_t highest_generation(const std::string& trial) const;
  std::string content(const HeldLease& lease, double renewed_s, bool released) const;

  std::filesystem::path dir_;
  WorkerIdentity me_;
  LeaseSettings settings_;
  std::function<double()> now_;
};

// "2026-12-06T16:45:57Z" of seconds since the epoch.
std::string utc_time_of(double unix_s);

}  // namespace expt::io
