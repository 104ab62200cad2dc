// The messages of an MPI sweep (docs/sweeps.md): world rank 0 coordinates, ranks 1.. form groups
// of `group_size` ranks that train one trial at a time. Only each group's leader (its rank 0)
// talks to the coordinator; it passes assignments on to its group. The protocol, one MPI tag per
// message kind on MPI_COMM_WORLD:
//   leader -> 0   request    ready for a trial (empty)
//   0 -> leader   assign     "<trial id>\n<canonical trial YAML>"
//   0 -> leader   shutdown   no more work (empty)
//   leader -> 0   progress   JSON {step, loss, tokens_per_s, step_s} of the running trial (every few seconds)
//   leader -> 0   result     JSON of the trial's outcome
// Messages from one sender arrive in the order sent, so a progress report never follows its
// trial's result.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>

#include "core/comm/mpi_communicator.hpp"

namespace expt::comm {

struct TrialAssignment {
  std::string id;
  std::string config_yaml;  // canonical YAML of the resolved trial config (`out` set)
  // The trial's part in WSD branching, one JSON line (experiments/sweep/runner.hpp BranchRole);
  // sent to a group's leader only (WorkerChannel::share leaves it out: a worker's rank 0 has it).
  std::string branch = "{}";
};

struct TrialProgressMessage {
  std::int64_t step = 0;
  double loss = 0;  // NaN when not finite
  double tokens_per_s = 0;
  double step_s = 0;  // measured seconds per step of this attempt (0: not yet)
};

struct TrialResultMessage {
  std::string status;          // COMPLETED | DIVERGED | FAILED | RUNNING (interrupted)
  double final_eval_loss = 0;  // +inf when none
  std::int64_t steps_done = 0, tokens_seen = 0;
  double wall_s = 0;
  std::string message;
  bool interrupted = false;
  int signal = 0;
  bool refused = false;  // FAILED before it started (memory pre-flight): not retried
};

// Ends every process of the job with `exit_code` (MPI_Abort on MPI_COMM_WORLD).
[[noreturn]] void abort_job(int exit_code);

// World rank 0's end. Takes no part in the groups (the groups' split is collective over the world).
class SweepCoordinatorChannel {
 public:
  SweepCoordinatorChannel();
  SweepCoordinatorChannel(const SweepCoordinatorChannel&) = delete;
  SweepCoordinatorChannel& operator=(const SweepCoordinatorChannel&) = delete;

  struct Message {
    enum class Kind { request, progress, result } kind = Kind::request;
    int leader = 0;  // world rank of the sending group leader
    TrialProgressMessage progress;
    TrialResultMessage result;
  };
  // The next message from any leader, or nullopt at once when none is waiting.
  std::optional<Message> poll();
  // A message is waiting.
  bool message_waiting();
  void assign(int leader, const TrialAssignment& trial);
  void shut_down(int leader);
};

// The end of a rank >= 1: its group (ranks (world_rank - 1) / group_size, in world order) and, on
// the leader, the link to the coordinator.
class SweepGroupChannel {
 public:
  SweepGroupChannel(int world_rank, int group_size);
  ~SweepGroupChannel();
  SweepGroupChannel(const SweepGroupChannel&) = delete;
  SweepGroupChannel& operator=(const SweepGroupChannel&) = delete;

  // The group's communicator (rank 0 is the leader).
  MpiCommunicator& group() { return group_comm_; }
  bool leader() const { return group_comm_.rank() == 0; }
  // Collective over the group: the leader asks the coordinator for a trial and passes the answer
  // on; nullopt when the sweep is over.
  std::optional<TrialAssignment> next_trial();
  // Leader only. Small messages (the eager protocol): MPI_Send returns without waiting for the
  // coordinator.
  void report_progress(const TrialProgressMessage& progress);
  void report_result(const TrialResultMessage& result);

 private:
  MPI_Comm group_ = MPI_COMM_NULL;
  MpiCommunicator group_comm_;
};

// `expt worker` under mpirun/srun (docs/distributed.md "Workers and leases"): the job's ranks are
// one worker that trains one data-parallel trial at a time. World rank 0 claims each trial (it holds
// the lease) and passes it on; there is no coordinator.
class WorkerChannel {
 public:
  WorkerChannel();  // over a duplicate of MPI_COMM_WORLD
  ~WorkerChannel();
  WorkerChannel(const WorkerChannel&) = delete;
  WorkerChannel& operator=(const WorkerChannel&) = delete;

  MpiCommunicator& world() { return world_comm_; }
  bool leader() const { return world_comm_.rank() == 0; }
  // Collective: rank 0's `trial` (nullopt: the worker stops) reaches every rank; the others' is ignored.
  std::optional<TrialAssignment> share(const std::optional<TrialAssignment>& trial);

 private:
  MPI_Comm world_ = MPI_COMM_NULL;
  MpiCommunicator world_comm_;
};

}  // namespace expt::comm
