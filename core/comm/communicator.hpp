// Communicator: the collectives a data-parallel trial needs, behind one interface so that the
// trainer does not know whether it runs alone, over MPI, or (later) over NCCL. Typed wrappers count
// elements, never bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace expt::comm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string kind() const = 0;  // "local" | "mpi"
  // In-place sum over all ranks of the group.
  virtual void allreduce_sum(std::span<float> data) = 0;
  virtual void allreduce_sum(std::span<double> data) = 0;
  virtual void allreduce_sum(std::span<std::int64_t> data) = 0;
  // Root's data is copied to every rank.
  virtual void broadcast(std::span<float> data, int root) = 0;
  virtual void broadcast(std::span<std::int64_t> data, int root) = 0;
  virtual void barrier() = 0;
};

// A group of one: every collective is the identity.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string kind() const override { return "local"; }
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void allreduce_sum(std::span<std::int64_t>) override {}
  void broadcast(std::span<float>, int) override {}
  void broadcast(std::span<std::int64_t>, int) override {}
  void barrier() override {}
};

// True when this process was started by an MPI launcher (mpirun, srun): only then is MPI
// initialised, so that `expt run` alone never needs an MPI runtime.
bool launched_by_mpi();

}  // namespace expt::comm
