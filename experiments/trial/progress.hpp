// Progress: the live training line. On a terminal, one line rewritten in place (step, loss,
// tokens/s, ETA); otherwise (a log file, CI) a plain line every `every` steps. Messages printed
// through it never tear the live line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace expt::experiments {

enum class ProgressMode;

class Progress {
 public:
  Progress(ProgressMode mode, std::int64_t total_steps, std::int64_t every);
  void step(std::int64_t step, double loss, double tokens_this_step);
  void message(const std::string& line);
  void done();

 private:
  std::string line(std::int64_t step, double loss) const;
  bool tty_ = false;
  bool quiet_ = false;
  bool live_shown_ = false;
  std::int64_t total_;
  std::int64_t every_;
  std::int64_t first_step_ = -1;
  double tokens_ = 0;  // since first_step_
  double ema_tps_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace expt::experiments
