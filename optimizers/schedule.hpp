// Learning-rate schedules (docs/config.md `schedule`, decision 9). `step` is the number of the update the lr is used
// for, 1..N with N = total_steps; η = peak_lr, η_min = min_lr_ratio·η.
//
// Warmup length W (in steps):
//   warmup >= 1        W = round(warmup)             (a number of steps)
//   0 <= warmup < 1    W = round(warmup · N)         (a fraction of the run, nearest step)
//   then W = min(W, N).
// Warmup phase, 1 <= step <= W:   lr = η · step / W   (linear from 0; update W uses exactly η).
// After warmup, s = step − W in 1..S with S = N − W:
//   constant   lr = η
//   cosine     lr = η_min + (η − η_min) · ½(1 + cos(π·s/S))        (update N uses η_min)
//   linear     lr = η + (η_min − η) · s/S                            (update N uses η_min)
//   wsd        D = min(round(decay · N), S) decay steps at the end of the run:
//              step <= N − D:  lr = η                                (stable)
//              step >  N − D:  lr = η + (η_min − η) · d/D, d = step − (N − D) in 1..D
// Edge cases that follow from the formulas: warmup 0 starts the decay at update 1 (cosine's first
// update is already slightly below η); W = N is warmup only, the last update at η; N = 1 without
// warmup gives cosine/linear/wsd(D=1) the value η_min for its single update.
#pragma once

#include <cstdint>

#include "core/config/trial_config.hpp"

namespace expt::optim {

// W of the formulas above. Throws std::invalid_argument for warmup < 0 or total_steps < 1.
std::int64_t warmup_steps(const config::ScheduleConfig& cfg, std::int64_t total_steps);

// wsd: N - D, the last update at the stable lr (the cooldown starts after it), with
// D = min(round(decay · N), N − W) and round = std::llround (halves away from zero). WSD branches
// (docs/sweeps.md "Branches") fork at this step; the planner and scheduled_lr share this function.
std::int64_t wsd_decay_start(const config::ScheduleConfig& cfg, std::int64_t total_steps);

// The lr of update `step` (1 <= step <= total_steps). Throws std::invalid_argument for an unknown
// schedule type, a step out of range, min_lr_ratio < 0, or (wsd) decay outside [0, 1].
double scheduled_lr(const config::ScheduleConfig& cfg, double peak_lr, std::int64_t step, std::int64_t total_steps);

}  // namespace expt::optim
