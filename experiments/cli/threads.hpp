// BLAS threads per rank for `expt bench --threads` (docs/performance.md "Threads").
//
// Trials (`expt run`, `expt sweep`) always run one OpenBLAS thread per rank: with 2 threads the
// same step gives different floats (measured: the loss of step 1 differs in the 9th digit, most
// gradient elements in the last bits), so a thread count would have to be part of the trial's
// identity (docs/decisions.md). tests/scripts/bench_threads.sh shows the difference and bounds it.
#pragma once

#include <string>

namespace expt::experiments {

// "auto" or a positive number (anything else: std::invalid_argument). auto: the CPUs this process
// may run on (sched_getaffinity), divided among the ranks of this job on the node when they share
// them: max(1, min(affinity CPUs, online CPUs / ranks on this node)). Ranks bound to one core each
// get 1; one process alone on an idle machine gets every core.
int resolve_blas_threads(const std::string& spec);

// Ranks of this job on this node, from the launcher's environment (Open MPI's
// OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's MPI_LOCALNRANKS; not MPI_Comm_split_type, which is
// collective); 1 when not launched by mpirun.
int ranks_on_this_node();

}  // namespace expt::experiments
