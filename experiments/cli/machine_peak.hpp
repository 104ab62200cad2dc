// The machine's fp32 limit for `expt bench` (docs/performance.md, "MFU against the machine"): the
// best single-thread sgemm any available backend reaches on this CPU, not the rate of the library
// expt happens to use. Probes, each a best-of-5 at n = 512 and 1024 and checked for correct
// results (kernels/sgemm_peak.hpp):
//   - oneDNN and OpenBLAS as this process loaded them;
//   - OpenBLAS with each core type the CPU can run (kernels::applicable_openblas_cores), each in a
//     child process `expt sgemm-probe` with OPENBLAS_CORETYPE set (the library reads it once, when
//     it loads) and OPENBLAS_L2_SIZE unset, without the parent's MPI/Slurm variables.
// A probe that crashes or computes wrong results is reported and never counts as the limit.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace expt::experiments {

struct SgemmProbe {
  std::string backend;  // onednn | openblas
  std::string kernel;   // oneDNN ISA or OpenBLAS core name, as the library reports it
  std::string how;      // "in process" | "child, OPENBLAS_CORETYPE=<core>"
  double gflops = 0;
  bool correct = false;
  std::string error;  // a child that failed: how
};

struct MachinePeak {
  std::vector<SgemmProbe> probes;
  double gflops = 0;          // best correct probe: the machine's fp32 limit
  std::string source;         // which probe that was
  double backend_gflops = 0;  // the in-process rate of the backend expt's products use
};

// Runs every probe. Call before MPI is initialised (it starts child processes).
MachinePeak measure_machine_peak();
nlohmann::json to_json(const MachinePeak& peak);

// `expt sgemm-probe` (hidden): OpenBLAS as loaded in this process, one JSON line on `out`.
int sgemm_probe_command(std::ostream& out);

}  // namespace expt::experiments
