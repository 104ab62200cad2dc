// Compiled only when CMake finds CUDA and NCCL (see nccl_communicator.hpp).
#include "core/comm/nccl_communicator.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

namespace expt::comm {

namespace {

void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorString(rc));
}

void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw std::runtime_error(std::string(what) + " failed: " + ncclGetErrorString(rc));
}

void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw std::runtime_error(std::string(what) + " failed (MPI error " + std::to_string(rc) + ")");
}

// NCCL's element type of each C++ type: the typed wrappers pick it from the pointer type.
template <class T>
ncclDataType_t nccl_type();
template <>
ncclDataType_t nccl_type<float>() {
  return ncclFloat32;
}
template <>
ncclDataType_t nccl_type<double>() {
  return ncclFloat64;
}
template <>
ncclDataType_t nccl_type<std::int64_t>() {
  return ncclInt64;
}

}  // namespace

int select_local_device(MPI_Comm world) {
  MPI_Comm node;
  check_mpi(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  int local_rank = 0;
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);
  int devices = 0;
  const cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0) throw std::runtime_error("no CUDA device is visible to this process");
  return local_rank % devices;
}

NcclCommunicator::NcclCommunicator(MPI_Comm group, int device) : group_(group), device_(device) {
  check_mpi(MPI_Comm_rank(group_, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(group_, &size_), "MPI_Comm_size");
  if (const char* t = std::getenv("EXPT_NCCL_TIMEOUT_S"); t != nullptr && *t != '\0') timeout_s_ = std::atof(t);
  // The device must be set before the NCCL communicator is created on it.
  check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  ncclUniqueId id;
  if (rank_ == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_mpi(MPI_Bcast(&id, static_cast<int>(sizeof(id)), MPI_BYTE, 0, group_), "MPI_Bcast(ncclUniqueId)");
  check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

NcclCommunicator::~NcclCommunicator() {
  for (Staged& s : staged_) {
    if (s.done != nullptr) cudaEventDestroy(s.done);
    if (s.device != nullptr) cudaFree(s.device);
  }
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

void NcclCommunicator::abort_job(const std::string& why) {
  std::fprintf(stderr, "expt: NCCL watchdog on group rank %d: %s; aborting the job (rerun to resume)\n", rank_,
               why.c_str());
  std::fflush(stderr);
  if (comm_ != nullptr) ncclCommAbort(comm_);
  comm_ = nullptr;
  MPI_Abort(MPI_COMM_WORLD, 3);
  std::abort();  // MPI_Abort does not return; this satisfies [[noreturn]]
}

void NcclCommunicator::wait_event(cudaEvent_t event, const char* what) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    const cudaError_t q = cudaEventQuery(event);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) abort_job(std::string(what) + ": " + cudaGetErrorString(q));
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &async) != ncclSuccess || async != ncclSuccess)
      abort_job(std::string(what) + ": NCCL asynchronous error: " + ncclGetErrorString(async));
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s_)
      abort_job(std::string(what) + ": not complete after " + std::to_string(timeout_s_) + " s (EXPT_NCCL_TIMEOUT_S)");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// A free staging slot with a device buffer of at least `bytes` and an event, marked busy until the
// collective staged through it has completed.
std::size_t NcclCommunicator::stage(std::size_t bytes) {
  std::size_t slot = 0;
  while (slot < staged_.size() && staged_[slot].busy) ++slot;
  if (slot == staged_.size()) staged_.emplace_back();
  Staged& s = staged_[slot];
  if (s.device_bytes < bytes) {
    if (s.device != nullptr) check_cuda(cudaFree(s.device), "cudaFree");
    s.device = nullptr;
    check_cuda(cudaMalloc(&s.device, bytes), "cudaMalloc(staging)");
    s.device_bytes = bytes;
  }
  if (s.done == nullptr) check_cuda(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "cudaEventCreate");
  s.busy = true;
  return slot;
}

// Host in (`in_bytes` at byte `in_offset` of the slot's device buffer), the collective on the
// device buffer, host out (`out_bytes`), and the slot's completion event: all ordered on the stream.
std::size_t NcclCommunicator::enqueue_staged(const void* in, std::size_t in_bytes, std::size_t in_offset, void* out,
                                             std::size_t out_bytes, const char* what,
                                             const std::function<ncclResult_t(void* device)>& collective) {
  const std::size_t slot = stage(std::max(in_offset + in_bytes, out_bytes));
  Staged& s = staged_[slot];
  if (out_bytes > 0) {
    char* device = static_cast<char*>(s.device);
    check_cuda(cudaMemcpyAsync(device + in_offset, in, in_bytes, cudaMemcpyHostToDevice, stream_), "copy in");
    check_nccl(collective(s.device), what);
    check_cuda(cudaMemcpyAsync(out, s.device, out_bytes, cudaMemcpyDeviceToHost, stream_), "copy out");
  }
  check_cuda(cudaEventRecord(s.done, stream_), "cudaEventRecord");
  return slot;
}

void NcclCommunicator::run_staged(const void* in, std::size_t in_bytes, std::size_t in_offset, void* out,
                                  std::size_t out_bytes, const char* what,
                                  const std::function<ncclResult_t(void* device)>& collective) {
  if (out_bytes == 0) return;
  Staged& s = staged_[enqueue_staged(in, in_bytes, in_offset, out, out_bytes, what, collective)];
  wait_event(s.done, what);
  s.busy = false;
}

// In-place all-reduce of a host span through a staging buffer; the element count comes from the span.
template <class T>
void NcclCommunicator::staged_allreduce(std::span<T> data, const char* what) {
  run_staged(data.data(), data.size_bytes(), 0, data.data(), data.size_bytes(), what, [&](void* device) {
    return ncclAllReduce(device, device, data.size(), nccl_type<T>(), ncclSum, comm_, stream_);
  });
}

template <class T>
void NcclCommunicator::staged_broadcast(std::span<T> data, int root, const char* what) {
  run_staged(data.data(), data.size_bytes(), 0, data.data(), data.size_bytes(), what, [&](void* device) {
    return ncclBroadcast(device, device, data.size(), nccl_type<T>(), root, comm_, stream_);
  });
}

// In place as NCCL allows: this rank's block is copied to its slot of the receive buffer.
template <class T>
void NcclCommunicator::staged_allgather(std::span<const T> send, std::span<T> recv, const char* what) {
  if (recv.size() != send.size() * static_cast<std::size_t>(size_))
    throw std::invalid_argument(std::string(what) + ": recv must hold size() * send.size() elements");
  if (send.empty()) return;
  const std::size_t offset = static_cast<std::size_t>(rank_) * send.size_bytes();
  run_staged(send.data(), send.size_bytes(), offset, recv.data(), recv.size_bytes(), what, [&](void* device) {
    T* all = static_cast<T*>(device);
    return ncclAllGather(all + static_cast<std::size_t>(rank_) * send.size(), all, send.size(), nccl_type<T>(), comm_,
                         stream_);
  });
}

void NcclCommunicator::allreduce_sum(std::span<float> data) { staged_allreduce(data, "ncclAllReduce(float)"); }
void NcclCommunicator::allreduce_sum(std::span<double> data) { staged_allreduce(data, "ncclAllReduce(double)"); }
void NcclCommunicator::allreduce_sum(std::span<std::int64_t> data) { staged_allreduce(data, "ncclAllReduce(int64)"); }
void NcclCommunicator::broadcast(std::span<float> data, int root) {
  staged_broadcast(data, root, "ncclBroadcast(float)");
}
void NcclCommunicator::broadcast(std::span<std::int64_t> data, int root) {
  staged_broadcast(data, root, "ncclBroadcast(int64)");
}
void NcclCommunicator::allgather(std::span<const float> send, std::span<float> recv) {
  staged_allgather(send, recv, "ncclAllGather(float)");
}
void NcclCommunicator::allgather(std::span<const double> send, std::span<double> recv) {
  staged_allgather(send, recv, "ncclAllGather(double)");
}

void NcclCommunicator::barrier() {
  // One element (not sizeof(float) elements: the llm.c mistake the typed wrappers exist for).
  float one = 1.0f;
  allreduce_sum(std::span<float>(&one, 1));
}

// Enqueued, not waited: the slot index is the Pending handle. An empty bucket still gets a slot
// whose event completes at once, so wait/test treat every handle alike.
Communicator::Pending NcclCommunicator::start_allreduce_sum(std::span<float> data) {
  const std::size_t bytes = data.size_bytes();
  return static_cast<Pending>(
      enqueue_staged(data.data(), bytes, 0, data.data(), bytes, "ncclAllReduce(float, bucket)", [&](void* device) {
        return ncclAllReduce(device, device, data.size(), nccl_type<float>(), ncclSum, comm_, stream_);
      }));
}

void NcclCommunicator::wait(Pending pending) {
  if (pending < 0 || static_cast<std::size_t>(pending) >= staged_.size()) return;
  Staged& s = staged_[static_cast<std::size_t>(pending)];
  if (!s.busy) return;
  wait_event(s.done, "ncclAllReduce(float, bucket)");
  s.busy = false;
}

bool NcclCommunicator::test(Pending pending) {
  if (pending < 0 || static_cast<std::size_t>(pending) >= staged_.size()) return true;
  Staged& s = staged_[static_cast<std::size_t>(pending)];
  if (!s.busy) return true;
  const cudaError_t q = cudaEventQuery(s.done);
  if (q == cudaErrorNotReady) return false;
  if (q != cudaSuccess) abort_job(std::string("bucket allreduce: ") + cudaGetErrorString(q));
  s.busy = false;
  return true;
}

void NcclCommunicator::device_allreduce_sum(float* data, std::size_t count) {
  check_nccl(ncclAllReduce(data, data, count, nccl_type<float>(), ncclSum, comm_, stream_),
             "ncclAllReduce(device float)");
}

void NcclCommunicator::device_allreduce_sum(double* data, std::size_t count) {
  check_nccl(ncclAllReduce(data, data, count, nccl_type<double>(), ncclSum, comm_, stream_),
             "ncclAllReduce(device double)");
}

void NcclCommunicator::device_broadcast(float* data, std::size_t count, int root) {
  check_nccl(ncclBroadcast(data, data, count, nccl_type<float>(), root, comm_, stream_), "ncclBroadcast(device float)");
}

void NcclCommunicator::synchronize() {
  cudaEvent_t ev = nullptr;
  check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  check_cuda(cudaEventRecord(ev, stream_), "cudaEventRecord");
  wait_event(ev, "device collectives");
  cudaEventDestroy(ev);
}

}  // namespace expt::comm
