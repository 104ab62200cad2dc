#include "experiments/cli/threads.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

namespace expt::experiments {

int ranks_on_this_node() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const char* value = std::getenv(name)) {
      const int n = std::atoi(value);
      if (n >= 1) return n;
    }
  return 1;
}

int resolve_blas_threads(const std::string& spec) {
  if (spec != "auto") {
    std::size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(spec, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != spec.size() || n < 1)
      throw std::invalid_argument("--threads must be `auto` or a positive number, not '" + spec + "'");
    return n;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  const int affinity = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int per_rank = static_cast<int>(std::max(1L, online) / ranks_on_this_node());
  return std::max(1, std::min(affinity, per_rank));
}

}  // namespace expt::experiments
