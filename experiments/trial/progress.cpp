#include "experiments/trial/progress.hpp"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "experiments/trial/trainer.hpp"

namespace expt::experiments {

namespace {
std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  const auto total = static_cast<long>(s + 0.5);
  if (total >= 3600) return fmt::format("{}:{:02}:{:02}", total / 3600, (total / 60) % 60, total % 60);
  return fmt::format("{:02}:{:02}", total / 60, total % 60);
}
}  // namespace

Progress::Progress(ProgressMode mode, std::int64_t total_steps, std::int64_t every)
    : total_(total_steps), every_(every), start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  quiet_ = mode == ProgressMode::quiet;
  tty_ = mode == ProgressMode::tty || (mode == ProgressMode::automatic && ::isatty(STDERR_FILENO) == 1);
}

std::string Progress::line(std::int64_t step, double loss) const {
  const double eta = ema_tps_ > 0 && tokens_ > 0
                         ? static_cast<double>(total_ - step) * (tokens_ / static_cast<double>(step - first_step_ + 1)) /
                               ema_tps_
                         : -1.0;
  return fmt::format("step {:>{}}/{} | loss {:.4f} | {:.0f} tok/s | ETA {}", step, fmt::formatted_size("{}", total_),
                     total_, loss, ema_tps_, format_duration(eta));
}

void Progress::step(std::int64_t step, double loss, double tokens_this_step) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (first_step_ < 0) {
    first_step_ = step;
    start_ = now;
  }
  tokens_ += tokens_this_step;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (elapsed > 0) ema_tps_ = tokens_ / elapsed;
  if (tty_) {
    // Redraw at most 10 times a second; always draw the last step.
    if (step != total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    std::fprintf(stderr, "\r\033[K%s", line(step, loss).c_str());
    std::fflush(stderr);
    live_shown_ = true;
  } else if (step % every_ == 0 || step == total_) {
    std::fprintf(stderr, "%s\n", line(step, loss).c_str());
    std::fflush(stderr);
  }
}

void Progress::message(const std::string& msg) {
  if (quiet_) return;
  if (live_shown_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", msg.c_str());
  live_shown_ = false;
  std::fflush(stderr);
}

void Progress::done() {
  if (tty_ && live_shown_) std::fprintf(stderr, "\n");
  live_shown_ = false;
}

}  // namespace expt::experiments
