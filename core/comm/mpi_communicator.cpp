#include "core/comm/mpi_communicator.hpp"

#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace expt::comm {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"})
    if (std::getenv(var) != nullptr) return true;
  return false;
}

namespace {
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(msg, static_cast<std::size_t>(len)));
}

// MPI counts are int: split very large buffers into chunks that fit.
template <class T, class Fn>
void chunked(std::span<T> data, Fn&& fn) {
  constexpr std::size_t max_chunk = static_cast<std::size_t>(INT_MAX);
  for (std::size_t off = 0; off < data.size(); off += max_chunk) {
    const std::size_t n = std::min(max_chunk, data.size() - off);
    fn(data.data() + off, static_cast<int>(n));
  }
}
}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes so that check() can name the operation.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int MpiSession::world_rank() const {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int MpiSession::world_size() const {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

void MpiCommunicator::allreduce_sum(std::span<float> data) {
  chunked(data, [&](float* p, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm_), "MPI_Allreduce(float)");
  });
}

void MpiCommunicator::allreduce_sum(std::span<double> data) {
  chunked(data, [&](double* p, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, comm_), "MPI_Allreduce(double)");
  });
}

void MpiCommunicator::allreduce_sum(std::span<std::int64_t> data) {
  chunked(data, [&](std::int64_t* p, int n) {
    check(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_INT64_T, MPI_SUM, comm_), "MPI_Allreduce(int64)");
  });
}

void MpiCommunicator::broadcast(std::span<float> data, int root) {
  chunked(data, [&](float* p, int n) { check(MPI_Bcast(p, n, MPI_FLOAT, root, comm_), "MPI_Bcast(float)"); });
}

void MpiCommunicator::broadcast(std::span<std::int64_t> data, int root) {
  chunked(data, [&](std::int64_t* p, int n) { check(MPI_Bcast(p, n, MPI_INT64_T, root, comm_), "MPI_Bcast(int64)"); });
}

void MpiCommunicator::broadcast(std::span<double> data, int root) {
  chunked(data, [&](double* p, int n) { check(MPI_Bcast(p, n, MPI_DOUBLE, root, comm_), "MPI_Bcast(double)"); });
}

void MpiCommunicator::barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

Communicator::Pending MpiCommunicator::start_allreduce_sum(std::span<float> data) {
  if (data.size() > static_cast<std::size_t>(INT_MAX))
    throw std::runtime_error("start_allreduce_sum: a bucket of more than INT_MAX floats");
  // Reuse a completed slot so the table stays as small as the number of buckets in flight.
  std::size_t slot = 0;
  while (slot < requests_.size() && requests_[slot] != MPI_REQUEST_NULL) ++slot;
  if (slot == requests_.size()) requests_.push_back(MPI_REQUEST_NULL);
  check(MPI_Iallreduce(MPI_IN_PLACE, data.data(), static_cast<int>(data.size()), MPI_FLOAT, MPI_SUM, comm_,
                       &requests_[slot]),
        "MPI_Iallreduce(float)");
  return static_cast<Pending>(slot);
}

void MpiCommunicator::wait(Pending pending) {
  if (pending < 0 || static_cast<std::size_t>(pending) >= requests_.size()) return;  // -1: already complete
  check(MPI_Wait(&requests_[static_cast<std::size_t>(pending)], MPI_STATUS_IGNORE), "MPI_Wait(allreduce)");
}

bool MpiCommunicator::test(Pending pending) {
  if (pending < 0 || static_cast<std::size_t>(pending) >= requests_.size()) return true;
  int done = 0;
  check(MPI_Test(&requests_[static_cast<std::size_t>(pending)], &done, MPI_STATUS_IGNORE), "MPI_Test(allreduce)");
  return done != 0;
}

void MpiCommunicator::progress() {
  for (MPI_Request& r : requests_) {
    if (r == MPI_REQUEST_NULL) continue;
    int done = 0;
    check(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "MPI_Test(progress)");
  }
}

void MpiCommunicator::allgather(std::span<const float> send, std::span<float> recv) {
  if (recv.size() != send.size() * static_cast<std::size_t>(size_) || send.size() > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument("allgather(float): recv must hold size() * send.size() elements, send < 2^31");
  check(MPI_Allgather(send.data(), static_cast<int>(send.size()), MPI_FLOAT, recv.data(), static_cast<int>(send.size()),
                      MPI_FLOAT, comm_),
        "MPI_Allgather(float)");
}

void MpiCommunicator::allgather(std::span<const double> send, std::span<double> recv) {
  if (recv.size() != send.size() * static_cast<std::size_t>(size_) || send.size() > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument("allgather(double): recv must hold size() * send.size() elements, send < 2^31");
  check(MPI_Allgather(send.data(), static_cast<int>(send.size()), MPI_DOUBLE, recv.data(),
                      static_cast<int>(send.size()), MPI_DOUBLE, comm_),
        "MPI_Allgather(double)");
}

WorldCommunicator open_world_communicator(int* argc, char*** argv) {
  WorldCommunicator world;
  if (launched_by_mpi()) {
    world.session = std::make_unique<MpiSession>(argc, argv);
    world.comm = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
  } else {
    world.comm = std::make_unique<LocalCommunicator>();
  }
  return world;
}

}  // namespace expt::comm
