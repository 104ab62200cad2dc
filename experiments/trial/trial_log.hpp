// log.txt of a trial (written by the group's rank 0 only), each line also shown on the progress
// display.
#pragma once

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "core/io/trial_directory.hpp"
#include "experiments/trial/progress.hpp"

namespace expt::experiments {

class TrialLog {
 public:
  // `enabled` false (ranks other than 0): every line is dropped.
  TrialLog(const std::filesystem::path& file, bool enabled, Progress* progress)
      : enabled_(enabled), progress_(progress) {
    if (enabled_) {
      out_.open(file, std::ios::app);
      if (!out_) throw std::runtime_error("cannot open " + file.string() + " for appending");
    }
  }
  void info(const std::string& msg) {
    if (!enabled_) return;
    out_ << io::utc_time_now() << " " << msg << '\n';
    out_.flush();
    if (progress_ != nullptr) progress_->message(msg);
  }

 private:
  bool enabled_;
  Progress* progress_;
  std::ofstream out_;
};

}  // namespace expt::experiments
