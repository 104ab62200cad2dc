#include "experiments/cli/slurm_script.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <string_view>
#include <vector>

namespace expt::experiments {

namespace {

std::optional<int> parse_count(const std::string& text) {
  int value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < 0) return std::nullopt;
  return value;
}

// Seconds as sbatch's [D-]HH:MM:SS.
std::string slurm_time_text(int seconds) {
  const int days = seconds / 86400, rest = seconds % 86400;
  const std::string hms = fmt::format("{:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
  return days > 0 ? fmt::format("{}-{}", days, hms) : hms;
}

}  // namespace

std::optional<int> parse_slurm_time(const std::string& text) {
  int days = 0;
  std::string clock = text;
  if (const auto dash = text.find('-'); dash != std::string::npos) {
    const auto d = parse_count(text.substr(0, dash));
    if (!d) return std::nullopt;
    days = *d;
    clock = text.substr(dash + 1);
  }
  std::vector<int> fields;
  std::size_t start = 0;
  while (true) {
    const auto colon = clock.find(':', start);
    const auto field = parse_count(clock.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (!field) return std::nullopt;
    fields.push_back(*field);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  // MM:SS or HH:MM:SS; minutes and seconds below 60 (hours are free without days).
  if (fields.size() < 2 || fields.size() > 3) return std::nullopt;
  if (fields.size() == 2) fields.insert(fields.begin(), 0);
  if (fields[1] >= 60 || fields[2] >= 60 || (days > 0 && fields[0] >= 24)) return std::nullopt;
  const long long total = 86400LL * days + 3600LL * fields[0] + 60LL * fields[1] + fields[2];
  if (total <= 0 || total > 365LL * 86400) return std::nullopt;
  return static_cast<int>(total);
}

int slurm_signal_margin_s(const std::optional<int>& time_limit_s) {
  if (!time_limit_s) return 300;
  return std::clamp(*time_limit_s / 10, 30, 300);
}

std::string shell_quote(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_./:=@%+-").find(c) != std::string_view::npos;
  });
  if (plain) return text;
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string slurm_script(const SlurmJob& job, const std::string& log_pattern) {
  const bool multi_rank = job.ranks_per_trial > 1;
  std::string worker =
      fmt::format("{} worker {} --out {}", shell_quote(job.expt), shell_quote(job.study_file), shell_quote(job.out));
  for (const std::string& set : job.sets) worker += " --set " + shell_quote(set);
  if (job.no_memory_check) worker += " --no-memory-check";
  if (multi_rank) worker = fmt::format("srun --mpi=pmix --ntasks={} {}", job.ranks_per_trial, worker);

  std::string s = "#!/bin/bash\n";
  s += fmt::format(
      "# Written by `expt slurm submit` (docs/distributed.md \"Slurm\"): {} worker(s) of study '{}', {} rank(s)\n"
      "# each, sharing {}. Each array task runs one `expt worker`, which trains runnable trials until none\n"
      "# is left; this script submitted again adds workers, and a requeued task resumes.\n",
      job.workers, job.name, job.ranks_per_trial, job.out);
  s += fmt::format("#SBATCH --job-name={}\n", shell_quote("expt-" + job.name));
  s += fmt::format("#SBATCH --array=0-{}\n", job.workers - 1);
  s += fmt::format("#SBATCH --ntasks={}\n", job.ranks_per_trial);
  if (job.time_limit_s) s += fmt::format("#SBATCH --time={}\n", slurm_time_text(*job.time_limit_s));
  if (!job.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", shell_quote(job.partition));
  s += fmt::format("#SBATCH --signal=B:USR1@{}\n", slurm_signal_margin_s(job.time_limit_s));
  if (job.requeue) s += "#SBATCH --requeue\n";
  s += fmt::format("#SBATCH --output={}\n", shell_quote(log_pattern));
  s += "#SBATCH --open-mode=append\n";  // a requeued task appends to its log
  s += "set -u\n";
  // The traps come first: with a short --time Slurm may send the warning within seconds of the start.
  s += "# SIGUSR1 (the time limit is near, #SBATCH --signal): SIGTERM to the worker, which checkpoints at its next\n"
       "# step boundary, releases its lease and exits 143; a warning before the worker started keeps it from\n"
       "# starting. SIGTERM from Slurm (scancel, preemption) reaches the worker's processes directly; this shell\n"
       "# waits for the worker, so that Slurm does not end the job while it checkpoints.\n";
  s += "worker=\"\"\ntime_limit=0\n";
  // srun answers a SIGTERM of its own by killing its step, so the ranks are signalled through Slurm.
  s += multi_rank ? "stop_worker() { scancel --quiet --signal=TERM \"${SLURM_JOB_ID}.0\"; }\n"
                  : "stop_worker() { kill -TERM \"$worker\" 2> /dev/null; }\n";
  s += "trap 'time_limit=1; echo \"expt slurm: SIGUSR1 at $(date -u +%FT%TZ): the time limit is near\"; "
       "if [[ -n $worker ]]; then stop_worker; fi' USR1\n";
  s += "trap 'true' TERM\n";
  s += "echo \"expt slurm: job ${SLURM_JOB_ID} array task ${SLURM_ARRAY_TASK_ID} restart ${SLURM_RESTART_COUNT:-0} "
       "on $(hostname) at $(date -u +%FT%TZ)\"\n";
  s += "rc=143\n";
  s += "if ((!time_limit)); then\n";
  s += "  " + worker + " &\n";
  s += "  worker=$!\n";
  // A warning between the check above and `worker=$!` found no worker to stop.
  s += "  if ((time_limit)); then stop_worker; fi\n";
  s += "  while kill -0 \"$worker\" 2> /dev/null; do wait \"$worker\"; done\n";
  s += "  wait \"$worker\"\n  rc=$?\nfi\n";
  if (job.requeue)
    s += "# Stopped by the time limit: back into the queue, to resume where it stopped.\n"
         "if ((time_limit && rc == 143)); then scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"; fi\n";
  s += "exit \"$rc\"\n";
  return s;
}

}  // namespace expt::experiments
