// The NCCL communicator under mpirun (built only with CUDA and NCCL): bootstrap through MPI_Bcast
// of the unique id, every typed collective against the values it must produce, the non-blocking
// bucket path against the blocking one. Exits 77 (a visible skip in ctest) when no GPU is visible.
#include "core/comm/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/comm/gradient_buckets.hpp"

namespace {
int failures = 0;
void expect(bool ok, const char* what, int rank) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAIL (rank %d): %s\n", rank, what);
}
}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: no CUDA device visible\n");
    return 77;
  }
  MPI_Init(&argc, &argv);
  {
    expt::comm::NcclCommunicator comm(MPI_COMM_WORLD, expt::comm::select_local_device(MPI_COMM_WORLD));
    const int r = comm.rank(), n = comm.size();
    const double triangle = n * (n + 1) / 2.0;  // sum over ranks of (rank + 1)

    std::vector<float> f(1000, static_cast<float>(r + 1));
    comm.allreduce_sum(std::span<float>(f));
    bool ok = true;
    for (float x : f) ok = ok && x == static_cast<float>(triangle);
    expect(ok, "allreduce_sum(float)", r);

    std::vector<double> d(3, r + 1.0);
    comm.allreduce_sum(std::span<double>(d));
    expect(d[0] == triangle && d[2] == triangle, "allreduce_sum(double)", r);

    std::vector<std::int64_t> i64 = {r + 1, std::int64_t{1} << 40};
    comm.allreduce_sum(std::span<std::int64_t>(i64));
    expect(i64[0] == static_cast<std::int64_t>(triangle) && i64[1] == n * (std::int64_t{1} << 40),
           "allreduce_sum(int64) beyond 32 bits", r);

    std::vector<float> b(17, static_cast<float>(r));
    comm.broadcast(std::span<float>(b), n - 1);
    expect(b[0] == static_cast<float>(n - 1) && b[16] == static_cast<float>(n - 1), "broadcast(float)", r);

    std::vector<float> mine(5, static_cast<float>(10 * r)), all(5 * static_cast<std::size_t>(n), -1.0f);
    comm.allgather(std::span<const float>(mine), std::span<float>(all));
    ok = true;
    for (int k = 0; k < n; ++k) ok = ok && all[static_cast<std::size_t>(k) * 5 + 4] == static_cast<float>(10 * k);
    expect(ok, "allgather(float) in rank order", r);

    // Buckets through start_allreduce_sum/wait equal the blocking sum.
    std::vector<float> g(10007), ref;
    for (std::size_t k = 0; k < g.size(); ++k) g[k] = static_cast<float>((k % 13) + r) * 0.25f;
    ref = g;
    comm.allreduce_sum(std::span<float>(ref));
    const std::vector<std::size_t> ready = {8000, 3000, 0};
    expt::comm::BucketedAllreduce reducer(comm, g, expt::comm::make_gradient_buckets(ready, g.size(), 1),
                                          expt::comm::ReductionMode::overlapped);
    reducer.begin();
    for (std::size_t off : ready) reducer.ready(off);
    reducer.finish();
    expect(g == ref, "bucketed allreduce equals the blocking allreduce", r);
    comm.barrier();
  }
  int any = failures;
  MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Finalize();
  if (any == 0) std::printf("nccl communicator: ok\n");
  return any == 0 ? 0 : 1;
}
