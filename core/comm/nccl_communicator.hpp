// NcclCommunicator: the Communicator over NCCL (docs/distributed.md). Built only when CMake finds
// CUDA and NCCL (EXPT_HAVE_NCCL); the rest of the code sees only the Communicator interface.
//
// Bootstrap, once per rank group and reused across trials: every member sets its CUDA device (the
// node-local rank modulo the visible devices, from MPI_Comm_split_type(SHARED)); the group's rank
// 0 calls ncclGetUniqueId and MPI_Bcasts the id's bytes over the group's MPI communicator; every
// member then calls ncclCommInitRank(group size, id, group rank). Collectives run on a dedicated
// non-blocking CUDA stream.
//
// Two kinds of calls:
//  - the Communicator interface takes host spans (the trainer keeps its tensors on the host): the
//    data is staged through device buffers (host -> device, collective, device -> host), all
//    ordered on the stream;
//  - device_* calls take device pointers and an ELEMENT count typed by the pointer, so that a
//    byte count can never be passed where NCCL expects elements.
// Watchdog: every wait polls the stream's completion together with ncclCommGetAsyncError; an
// asynchronous NCCL error, or no completion within the timeout (EXPT_NCCL_TIMEOUT_S, default
// 600 s), aborts the NCCL communicator (ncclCommAbort) and then the whole job (MPI_Abort), so a
// hang becomes a prompt crash that rerunning the sweep resumes from.
#pragma once

#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/comm/communicator.hpp"

namespace expt::comm {

// The CUDA device of this process: node-local rank (MPI_Comm_split_type SHARED) modulo the
// number of visible devices. Throws std::runtime_error when no device is visible.
int select_local_device(MPI_Comm world);

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `group` (every member calls it). Sets the CUDA device first.
  NcclCommunicator(MPI_Comm group, int device);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string kind() const override { return "nccl"; }

  void allreduce_sum(std::span<float> data) override;
  void allreduce_sum(std::span<double> data) override;
  void allreduce_sum(std::span<std::int64_t> data) override;
  void broadcast(std::span<float> data, int root) override;
  void broadcast(std::span<std::int64_t> data, int root) override;
  void barrier() override;
  Pending start_allreduce_sum(std::span<float> data) override;
  void wait(Pending pending) override;
  bool test(Pending pending) override;
  void allgather(std::span<const float> send, std::span<float> recv) override;
  void allgather(std::span<const double> send, std::span<double> recv) override;

  // Device buffers, counts in elements; enqueued on stream(), call synchronize() to wait.
  void device_allreduce_sum(float* data, std::size_t count);
  void device_allreduce_sum(double* data, std::size_t count);
  void device_broadcast(float* data, std::size_t count, int root);
  void synchronize();  // waits for the stream under the watchdog
  cudaStream_t stream() const { return stream_; }

 private:
  // One staged host collective: host -> device, collective, device -> host, an event at the end.
  struct Staged {
    void* device = nullptr;
    std::size_t device_bytes = 0;
    cudaEvent_t done = nullptr;
    bool busy = false;
  };
  std::size_t stage(std::size_t bytes);                  // a free staging slot (device buffer >= bytes), now busy
  void wait_event(cudaEvent_t event, const char* what);  // the watchdog loop
  [[noreturn]] void abort_job(const std::string& why);
  // The staged host collectives (one body for every type: the element count always comes from the
  // span, the NCCL type from its element type). enqueue_staged returns the busy slot.
  std::size_t enqueue_staged(const void* in, std::size_t in_bytes, std::size_t in_offset, void* out,
                             std::size_t out_bytes, const char* what,
                             const std::function<ncclResult_t(void* device)>& collective);
  void run_staged(const void* in, std::size_t in_bytes, std::size_t in_offset, void* out, std::size_t out_bytes,
                  const char* what, const std::function<ncclResult_t(void* device)>& collective);
  template <class T>
  void staged_allreduce(std::span<T> data, const char* what);
  template <class T>
  void staged_broadcast(std::span<T> data, int root, const char* what);
  template <class T>
  void staged_allgather(std::span<const T> send, std::span<T> recv, const char* what);

  MPI_Comm group_;
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  double timeout_s_ = 600;
  std::vector<Staged> staged_;  // Pending handle -> slot
};

}  // namespace expt::comm
