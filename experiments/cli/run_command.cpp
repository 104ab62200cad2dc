#include <fmt/format.h>

#include <cstdio>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "core/comm/mpi_communicator.hpp"
#include "core/config/loader.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/trial_commands.hpp"
#include "experiments/trial/memory_estimate.hpp"
#include "experiments/trial/stop_signal.hpp"
#include "experiments/trial/trainer.hpp"

namespace expt::experiments {

namespace {

ProgressMode parse_progress(const std::string& s) {
  if (s == "tty") return ProgressMode::tty;
  if (s == "plain") return ProgressMode::plain;
  if (s == "quiet") return ProgressMode::quiet;
  return ProgressMode::automatic;
}

}  // namespace

int run_command(int argc, char** argv, const std::string& path, std::vector<std::string> sets, const std::string& out,
                const std::string& progress, bool memory_check) {
  if (!out.empty()) sets.push_back("out=" + out);
  const comm::WorldCommunicator world = comm::open_world_communicator(&argc, &argv);
  comm::Communicator* comm = world.comm.get();
  const int rank = comm->rank();
  const auto cfg = load_config_or_report(path, sets, rank);
  if (!cfg) return kExitUsage;
  if (cfg->train.ranks != comm->size()) {
    if (rank == 0)
      std::fprintf(stderr,
                   "expt: train.ranks is %d but this run has %d rank(s); launch `mpirun -np %d expt run ...` or set "
                   "train.ranks\n",
                   cfg->train.ranks, comm->size(), cfg->train.ranks);
    return kExitUsage;
  }
  install_stop_signal_handlers();
  TrainerOptions options;
  options.progress = rank == 0 ? parse_progress(progress) : ProgressMode::quiet;
  options.hooks = TrainerHooks::from_environment();
  options.memory_check = memory_check;
  try {
    const auto outcome = run_trial(*cfg, *comm, options);
    if (rank != 0) return outcome.interrupted ? exit_code_for_signal(outcome.signal) : kExitOk;
    if (outcome.interrupted) {
      std::fprintf(stderr, "expt: stopped by %s at step %lld; checkpoint written, rerun the same command to resume\n",
                   describe_stop_signal(outcome.signal).c_str(), static_cast<long long>(outcome.summary.steps_done));
      return exit_code_for_signal(outcome.signal);
    }
    const auto& s = outcome.summary;
    if (outcome.already_finished)
      std::fprintf(stderr, "expt: %s already finished (%s); nothing to do\n", cfg->out.c_str(), s.status.c_str());
    std::printf("%s\n",
                fmt::format("status {} | final eval loss {:.4f} | best {:.4f} | steps {} | {:.1f} s | {}", s.status,
                            s.final_eval_loss, s.best_eval_loss, s.steps_done, s.wall_s, outcome.result.string())
                    .c_str());
    if (s.status == "FAILED") {
      std::fprintf(stderr, "expt: trial FAILED: %s\n", s.message.c_str());
      return kExitFailed;
    }
    return s.status == "DIVERGED" ? kExitDiverged : kExitOk;
  } catch (const MemoryRefusal& e) {
    // Nothing was allocated or written: like a bad configuration, the config has to change.
    if (rank == 0) std::fprintf(stderr, "expt: %s\n", e.what());
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    // An allocation none of the named sites (core/util/allocation.hpp) covers.
    std::fprintf(stderr,
                 "expt: error: out of memory (std::bad_alloc); `expt validate` prints this trial's memory estimate\n");
    return kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace expt::experiments
