// MpiCommunicator: the Communicator over an MPI communicator (a rank group made by MPI_Comm_split,
// or MPI_COMM_WORLD). MpiSession owns MPI_Init/MPI_Finalize for the process.
#pragma once

#include <mpi.h>

#include <memory>
#include <vector>

#include "core/comm/communicator.hpp"

namespace expt::comm {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);  // MPI_Init_thread(FUNNELED)
  ~MpiSession();                        // MPI_Finalize
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int world_rank() const;
  int world_size() const;
};

// The communicator of a whole launch: under mpirun an MpiSession and MPI_COMM_WORLD, otherwise a
// LocalCommunicator (one rank, no MPI). `session` is empty without mpirun.
struct WorldCommunicator {
  std::unique_ptr<MpiSession> session;
  std::unique_ptr<Communicator> comm;
};
WorldCommunicator open_world_communicator(int* argc, char*** argv);

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm);  // does not take ownership
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string kind() const override { return "mpi"; }
  void allreduce_sum(std::span<float> data) override;
  void allreduce_sum(std::span<double> data) override;
  void allreduce_sum(std::span<std::int64_t> data) override;
  void broadcast(std::span<float> data, int root) override;
  void broadcast(std::span<std::int64_t> data, int root) override;
  void broadcast(std::span<double> data, int root) override;
  void barrier() override;
  // MPI_Iallreduce; progress() calls MPI_Test on every outstanding request.
  Pending start_allreduce_sum(std::span<float> data) override;
  void wait(Pending pending) override;
  bool test(Pending pending) override;
  void progress() override;
  void allgather(std::span<const float> send, std::span<float> recv) override;
  void allgather(std::span<const double> send, std::span<double> recv) override;
  MPI_Comm handle() const { return comm_; }

 private:
  std::vector<MPI_Request> requests_;  // handle -> request; MPI_REQUEST_NULL once completed
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace expt::comm
