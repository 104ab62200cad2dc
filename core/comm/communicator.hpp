// Communicator: the collectives a data-parallel trial needs, behind one interface so that the
// trainer does not know whether it runs alone, over MPI, or (later) over NCCL. Typed wrappers count
// elements, never bytes.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

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
  // Bit for bit (the sharded optimizers gather their double state with it). The default sends the
  // bit patterns as int64; MPI overrides it with MPI_DOUBLE.
  virtual void broadcast(std::span<double> data, int root) {
    std::vector<std::int64_t> bits(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) bits[i] = std::bit_cast<std::int64_t>(data[i]);
    broadcast(std::span<std::int64_t>(bits), root);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::bit_cast<double>(bits[i]);
  }
  virtual void barrier() = 0;

  // Non-blocking sum (data-parallel gradient buckets). start_allreduce_sum begins an in-place sum
  // of `data` and returns a handle; `data` must stay alive and untouched until wait(handle) has
  // returned. progress() lets the implementation advance outstanding reductions (MPI progresses
  // only inside MPI calls); test() is true once the reduction has completed. The default
  // implementation reduces at once (blocking), so a communicator without a non-blocking path is
  // still correct.
  using Pending = int;
  virtual Pending start_allreduce_sum(std::span<float> data) {
    allreduce_sum(data);
    return -1;
  }
  virtual void wait(Pending) {}
  virtual bool test(Pending) { return true; }
  virtual void progress() {}
  // Every rank gets every rank's `send` (all the same size), concatenated in rank order:
  // recv.size() == size() * send.size(). The deterministic data-parallel mode sums these partial
  // results itself, in a fixed order. The default writes `send` into this rank's slot of a zeroed
  // `recv` and sums over ranks (x + 0 == x exactly); MPI overrides it with MPI_Allgather.
  virtual void allgather(std::span<const float> send, std::span<float> recv) { allgather_by_sum(send, recv); }
  virtual void allgather(std::span<const double> send, std::span<double> recv) { allgather_by_sum(send, recv); }

 private:
  template <class T>
  void allgather_by_sum(std::span<const T> send, std::span<T> recv) {
    for (auto& x : recv) x = T(0);
    const std::size_t slot = static_cast<std::size_t>(rank()) * send.size();
    for (std::size_t i = 0; i < send.size() && slot + i < recv.size(); ++i) recv[slot + i] = send[i];
    allreduce_sum(recv);
  }
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
  void broadcast(std::span<double>, int) override {}
  void barrier() override {}
};

// True when this process was started by an MPI launcher (mpirun, srun): only then is MPI
// initialised, so that `expt run` alone never needs an MPI runtime.
bool launched_by_mpi();

}  // namespace expt::comm
