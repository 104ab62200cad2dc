// WSD branches (docs/sweeps.md "Branches"; decisions 114-116). Trials that differ only in
// train.steps share their first c updates when the schedule is wsd with an absolute warmup: c is the
// shorter run's cooldown start (optim::wsd_decay_start), the learning rate of every update <= c is
// then independent of train.steps, and batches, evals and RNG streams depend on the step alone.
// So the longer trial (the trunk) keeps a committed checkpoint at each shorter trial's c (a fork
// point), and the shorter trial (the branch) starts from a copy of it instead of from scratch; its
// trial.yaml stays a complete standalone config whose run from scratch is bit for bit the same.
//
//   <trunk dir>/forks/step-<c>/metrics.h5   the trunk's metric rows of steps 0..c (one segment)
//   <trunk dir>/forks/step-<c>/state.h5     the trunk's checkpoint after update c
//   <trunk dir>/forks/step-<c>/COMMIT       written last (core/io/checkpoint.hpp)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/config/trial_config.hpp"
#include "core/io/trial_directory.hpp"
#include "core/util/state_dict.hpp"

namespace expt::experiments {

// Empty when updates 1..step (and the metrics, evals and data of those steps) of `trunk` and
// `branch` are the same; else why not: the configs differ in another key than train.steps, the
// schedule is not wsd, the warmup is a fraction of train.steps, or `step` is past either run's
// cooldown start.
std::string branch_prefix_mismatch(const config::TrialConfig& trunk, const config::TrialConfig& branch,
                                   std::int64_t step);

// Whether <trial_dir>/forks/step-<step> is committed.
bool has_fork_point(const std::filesystem::path& trial_dir, std::int64_t step);

// The trunk's rank 0 at update `step`, after its metrics segment was closed (the checkpoint's
// before_checkpoint): writes forks/step-<step>/metrics.h5 from the consolidated segments, then
// state.h5 and COMMIT. A committed fork point is left as it is (a resumed trunk passes it again
// with the same state).
void save_fork_point(const io::TrialDirectory& dir, std::int64_t step, const StateDict& state);

// The branch's rank 0, before training, when its directory has no committed checkpoint: copies
// the trunk's fork point at `step` into it as the branch's own (metrics as segment
// seg-<attempt>-0.h5, the checkpoint re-stamped with the branch's config hash and committed last)
// after checking branch_prefix_mismatch against the trunk's trial.yaml. Returns "" when forked,
// else why not (the branch then trains from scratch, which gives the same result).
std::string fork_from_trunk(const std::filesystem::path& trunk_dir, const io::TrialDirectory& branch,
                            const config::TrialConfig& branch_cfg, std::int64_t step, int attempt);

}  // namespace expt::experiments
