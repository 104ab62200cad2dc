// Running a planned study: trials handed out by the Scheduler (experiments/sweep/scheduler.hpp),
// either one by one in this process or, under mpirun/srun, from world rank 0 (the coordinator) to
// groups of sweep.ranks_per_trial ranks that train one data-parallel trial at a time
// (docs/sweeps.md). Each returns the sweep's exit code: 0 done, 1 some trial FAILED for good,
// 128+N stopped by signal N (rerun the same command to resume).
#pragma once

#include <filesystem>

#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"

namespace expt::experiments {

// One process: every trial in turn on this rank (sweep.ranks_per_trial must be 1).
int run_sweep_alone(const Study& study, const Planner& planner, const std::filesystem::path& dir);

// World rank 0 of an MPI job of world_size ranks: hands trials to the groups until every trial is
// done or a signal stops the sweep, then tells every group to stop.
int coordinate_sweep(const Study& study, const Planner& planner, const std::filesystem::path& dir, int world_size);

// World rank >= 1: joins group (world_rank - 1) / group_size and trains the trials the coordinator
// sends its leader, until told to stop.
int work_in_sweep_group(int world_rank, int group_size, double collective_timeout_s);

}  // namespace expt::experiments
