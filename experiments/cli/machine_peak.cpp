#include "experiments/cli/machine_peak.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "experiments/cli/exit_codes.hpp"
#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"
#include "kernels/sgemm_peak.hpp"

extern char** environ;

namespace expt::experiments {

namespace {

const std::vector<int> kSizes = {512, 1024};
constexpr int kRepeats = 5;

SgemmProbe probe_in_process(kernels::GemmBackend backend) {
  SgemmProbe p;
  p.backend = kernels::gemm_backend_name(backend);
  p.kernel = backend == kernels::GemmBackend::onednn ? kernels::onednn_isa_name() : kernels::openblas_core_name();
  p.how = "in process";
  p.correct = kernels::sgemm_correct(backend);
  p.gflops = kernels::sgemm_rate_gflops(backend, kSizes, kRepeats);
  return p;
}

// The parent's environment without what would make the child join an MPI job or keep the
// parent's OpenBLAS settings, plus the core type and one thread.
std::vector<std::string> child_environment(const std::string& core) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var = *e;
    const bool drop = var.rfind("OMPI_", 0) == 0 || var.rfind("PMIX_", 0) == 0 || var.rfind("PMI_", 0) == 0 ||
                      var.rfind("SLURM_", 0) == 0 || var.rfind("OPENBLAS_", 0) == 0 ||
                      var.rfind("OMP_NUM_THREADS=", 0) == 0;
    if (!drop) env.push_back(var);
  }
  env.push_back("OPENBLAS_CORETYPE=" + core);
  env.push_back("OPENBLAS_NUM_THREADS=1");
  env.push_back("OMP_NUM_THREADS=1");
  return env;
}

SgemmProbe probe_child(const std::string& core) {
  SgemmProbe p;
  p.backend = "openblas";
  p.kernel = core;
  p.how = "child, OPENBLAS_CORETYPE=" + core;
  int fds[2];
  if (::pipe(fds) != 0) {
    p.error = "pipe failed";
    return p;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> env = child_environment(core);
  std::vector<char*> envp;
  for (auto& v : env) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", cmd = "sgemm-probe";
  char* argv[] = {exe.data(), cmd.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    p.error = std::string("cannot start the probe: ") + std::strerror(rc);
    return p;
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    p.error = "crashed (signal " + std::to_string(WTERMSIG(status)) + ")";
    return p;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    p.error = "exited with status " + std::to_string(WEXITSTATUS(status));
    return p;
  }
  try {
    const auto j = nlohmann::json::parse(out);
    p.kernel = j.at("kernel").get<std::string>();  // what the library says it picked
    p.gflops = j.at("gflops").get<double>();
    p.correct = j.at("correct").get<bool>();
  } catch (const std::exception& e) {
    p.error = std::string("unreadable probe output: ") + e.what();
  }
  return p;
}

}  // namespace

MachinePeak measure_machine_peak() {
  MachinePeak peak;
  kernels::set_blas_threads(1);
  peak.probes.push_back(probe_in_process(kernels::GemmBackend::onednn));
  peak.probes.push_back(probe_in_process(kernels::GemmBackend::openblas));
  for (const std::string& core : kernels::applicable_openblas_cores()) peak.probes.push_back(probe_child(core));
  // The libxsmm backend runs these sizes (512, 1024) on oneDNN: its rate is the oneDNN probe's.
  const kernels::GemmBackend backend = kernels::gemm_backend();
  const std::string used =
      kernels::gemm_backend_name(backend == kernels::GemmBackend::libxsmm ? kernels::GemmBackend::onednn : backend);
  for (const SgemmProbe& p : peak.probes) {
    if (p.how == "in process" && p.backend == used) peak.backend_gflops = p.gflops;
    if (p.correct && p.error.empty() && p.gflops > peak.gflops) {
      peak.gflops = p.gflops;
      peak.source = p.backend + " " + p.kernel + " (" + p.how + ")";
    }
  }
  if (peak.gflops <= 0) throw std::runtime_error("no sgemm probe computed correct results on this machine");
  return peak;
}

nlohmann::json to_json(const MachinePeak& peak) {
  nlohmann::json probes = nlohmann::json::array();
  for (const SgemmProbe& p : peak.probes)
    probes.push_back({{"backend", p.backend},
                      {"kernel", p.kernel},
                      {"how", p.how},
                      {"gflops", p.gflops},
                      {"correct", p.correct},
                      {"error", p.error}});
  return probes;
}

int sgemm_probe_command(std::ostream& out) {
  kernels::set_blas_threads(1);
  const SgemmProbe p = probe_in_process(kernels::GemmBackend::openblas);
  out << nlohmann::json{{"kernel", p.kernel}, {"gflops", p.gflops}, {"correct", p.correct}}.dump() << "\n";
  return kExitOk;
}

}  // namespace expt::experiments
