#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/comm/mpi_communicator.hpp"
#include "core/comm/sweep_channel.hpp"
#include "core/config/loader.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/study/plan.hpp"
#include "experiments/sweep/runner.hpp"
#include "experiments/sweep/study_identity.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

int sweep_command(int argc, char** argv, const std::string& study_path, const std::vector<std::string>& sets,
                  const std::string& out, bool add_to_existing) {
  std::unique_ptr<comm::MpiSession> mpi;
  int world_rank = 0, world_size = 1;
  if (comm::launched_by_mpi()) {
    mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    world_rank = mpi->world_rank();
    world_size = mpi->world_size();
  }
  // To resume: the same command (under mpirun with the same rank count).
  std::string command = command_line(argc, argv);
  if (world_size > 1) command = "mpirun -np " + std::to_string(world_size) + " " + command;
  std::optional<Study> study;
  try {
    study = load_study(study_path, sets);
  } catch (const config::ConfigErrors& e) {
    if (world_rank == 0) config::report_errors(e, "study");
    return kExitUsage;
  }
  const fs::path dir = out.empty() ? fs::path("runs") / study->name : fs::path(out);
  if (world_size > 1 && (world_size - 1) % study->ranks_per_trial != 0) {
    if (world_rank == 0)
      std::fprintf(stderr,
                   "expt: %d ranks cannot form groups of sweep.ranks_per_trial = %d plus one coordinator; launch "
                   "1 + k*%d ranks\n",
                   world_size, study->ranks_per_trial, study->ranks_per_trial);
    return kExitUsage;
  }
  if (world_size > 1 && world_rank != 0)
    return work_in_sweep_group(world_rank, study->ranks_per_trial, study->collective_timeout_s);

  std::optional<Planner> planner;
  try {
    planner.emplace(*study);
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    if (world_size > 1) comm::abort_job(kExitUsage);
    return kExitUsage;
  }
  if (world_size == 1) {
    try {
      return run_sweep_alone(*study, *planner, dir, add_to_existing, command);
    } catch (const StudyMismatch& e) {
      std::fprintf(stderr, "expt: %s\n", e.what());
      return kExitUsage;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "expt: error: %s\n", e.what());
      return kExitFailed;
    }
  }
  try {
    return coordinate_sweep(*study, *planner, dir, add_to_existing, world_size, command);
  } catch (const std::exception& e) {
    // Groups would wait forever for work: end the whole job with the reason.
    std::fprintf(stderr, "expt: sweep coordinator error: %s\n", e.what());
    comm::abort_job(kExitFailed);
  }
}

int worker_command(int argc, char** argv, const std::string& study_path, const std::vector<std::string>& sets,
                   const std::string& out, bool add_to_existing) {
  std::unique_ptr<comm::MpiSession> mpi;
  std::unique_ptr<comm::WorkerChannel> channel;
  if (comm::launched_by_mpi()) {
    mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    if (mpi->world_size() > 1) channel = std::make_unique<comm::WorkerChannel>();
  }
  const bool leader = channel == nullptr || channel->leader();
  std::string command = command_line(argc, argv);
  if (channel != nullptr) command = "mpirun -np " + std::to_string(channel->world().size()) + " " + command;
  std::optional<Study> study;
  try {
    study = load_study(study_path, sets);
  } catch (const config::ConfigErrors& e) {
    if (leader) config::report_errors(e, "study");
    return kExitUsage;
  }
  if (!leader) {
    try {
      return follow_worker(*channel, study->collective_timeout_s);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "expt: worker rank %d: %s\n", channel->world().rank(), e.what());
      comm::abort_job(kExitFailed);
    }
  }
  const fs::path dir = out.empty() ? fs::path("runs") / study->name : fs::path(out);
  try {
    const Planner planner(*study);
    return run_worker(*study, planner, dir, add_to_existing, command, channel.get());
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    if (channel != nullptr) comm::abort_job(kExitUsage);
    return kExitUsage;
  } catch (const StudyMismatch& e) {
    std::fprintf(stderr, "expt: %s\n", e.what());
    if (channel != nullptr) comm::abort_job(kExitUsage);
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    if (channel != nullptr) comm::abort_job(kExitFailed);
    return kExitFailed;
  }
}

}  // namespace expt::experiments
