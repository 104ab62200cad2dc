#include "optimizers/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace expt::optim {

std::int64_t warmup_steps(const config::ScheduleConfig& cfg, std::int64_t total_steps) {
  if (total_steps < 1) throw std::invalid_argument("schedule: total_steps must be >= 1");
  if (!(cfg.warmup >= 0.0)) throw std::invalid_argument("schedule: warmup must be >= 0");
  const double steps = cfg.warmup >= 1.0 ? cfg.warmup : cfg.warmup * static_cast<double>(total_steps);
  return std::min<std::int64_t>(std::llround(steps), total_steps);
}

std::int64_t wsd_decay_start(const config::ScheduleConfig& cfg, std::int64_t total_steps) {
  const std::int64_t warmup = warmup_steps(cfg, total_steps);
  const std::int64_t decay_steps =
      std::min<std::int64_t>(std::llround(cfg.decay * static_cast<double>(total_steps)), total_steps - warmup);
  return total_steps - decay_steps;
}

double scheduled_lr(const config::ScheduleConfig& cfg, double peak_lr, std::int64_t step, std::int64_t total_steps) {
  const std::int64_t warmup = warmup_steps(cfg, total_steps);
  if (step < 1 || step > total_steps)
    throw std::invalid_argument("schedule: step " + std::to_string(step) + " outside 1.." +
                                std::to_string(total_steps));
  if (!(cfg.min_lr_ratio >= 0.0)) throw std::invalid_argument("schedule: min_lr_ratio must be >= 0");
  const double min_lr = cfg.min_lr_ratio * peak_lr;

  const bool known = cfg.type == "constant" || cfg.type == "cosine" || cfg.type == "linear" || cfg.type == "wsd";
  if (!known)
    throw std::invalid_argument("unknown schedule type '" + cfg.type + "' (known: constant, cosine, linear, wsd)");
  if (cfg.type == "wsd" && !(cfg.decay >= 0.0 && cfg.decay <= 1.0))
    throw std::invalid_argument("schedule: wsd decay must be in [0, 1]");

  if (step <= warmup) return peak_lr * static_cast<double>(step) / static_cast<double>(warmup);

  const double s = static_cast<double>(step - warmup);         // 1..S
  const double S = static_cast<double>(total_steps - warmup);  // >= 1 here
  if (cfg.type == "cosine") return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * s / S));
  if (cfg.type == "linear") return peak_lr + (min_lr - peak_lr) * s / S;
  if (cfg.type == "wsd") {
    const std::int64_t decay_start = wsd_decay_start(cfg, total_steps);  // last stable update
    const std::int64_t decay_steps = total_steps - decay_start;
    if (step <= decay_start) return peak_lr;
    return peak_lr + (min_lr - peak_lr) * static_cast<double>(step - decay_start) / static_cast<double>(decay_steps);
  }
  return peak_lr;  // constant
}

}  // namespace expt::optim
