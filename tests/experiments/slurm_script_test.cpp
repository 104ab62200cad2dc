// The sbatch script of `expt slurm submit` (experiments/cli/slurm_script.hpp): its #SBATCH lines, the
// worker command for one and for several ranks, the time-limit signal and requeue, time parsing and
// shell quoting. The script itself runs on a one-node cluster in tests/scripts/slurm_workers.sh.
#include "experiments/cli/slurm_script.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace expt::experiments;

namespace {

SlurmJob job() {
  SlurmJob j;
  j.expt = "/opt/expt/bin/expt";
  j.study_file = "/home/a/study.yaml";
  j.out = "/shared/runs/s";
  j.name = "small";
  j.workers = 3;
  return j;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> sbatch_lines(const std::string& script) {
  std::vector<std::string> out;
  for (const std::string& line : lines_of(script))
    if (line.rfind("#SBATCH ", 0) == 0) out.emplace_back(line.begin() + 8, line.end());
  return out;
}

// The line that starts the worker in the background.
std::string worker_line(const std::string& script) {
  for (const std::string& line : lines_of(script))
    if (line.size() > 2 && line.compare(line.size() - 2, 2, " &") == 0) return line;
  return "";
}

bool has_line(const std::string& script, const std::string& wanted) {
  const auto lines = lines_of(script);
  return std::find(lines.begin(), lines.end(), wanted) != lines.end();
}

}  // namespace

TEST_CASE("slurm script: single-rank workers are a job array, each worker a child of the batch shell", "[slurm]") {
  const std::string script = slurm_script(job(), "/shared/runs/s/slurm/worker-%A_%a.out");
  const auto lines = lines_of(script);
  REQUIRE(lines.front() == "#!/bin/bash");
  CHECK(sbatch_lines(script) ==
        std::vector<std::string>{"--job-name=expt-small", "--array=0-2", "--ntasks=1", "--signal=B:USR1@300",
                                 "--output=/shared/runs/s/slurm/worker-%A_%a.out", "--open-mode=append"});
  CHECK(worker_line(script) == "  /opt/expt/bin/expt worker /home/a/study.yaml --out /shared/runs/s &");
  CHECK(script.find("srun") == std::string::npos);
  // The time limit's SIGUSR1 becomes the worker's SIGTERM (said in the log); the shell outlives the
  // worker and exits with its code. Without --requeue nothing requeues the task.
  CHECK(has_line(script, "stop_worker() { kill -TERM \"$worker\" 2> /dev/null; }"));
  CHECK(
      has_line(script,
               "trap 'time_limit=1; echo \"expt slurm: SIGUSR1 at $(date -u +%FT%TZ): the time limit is near\"; if [[ "
               "-n $worker ]]; then stop_worker; fi' USR1"));
  CHECK(has_line(script, "trap 'true' TERM"));
  // The traps are set before anything else runs (a short limit's warning may come at once), and a
  // warning before the worker starts keeps it from starting: the task ends 143 as if it had stopped.
  const auto index_of = [&lines](const std::string& prefix) {
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (lines[i].rfind(prefix, 0) == 0) return i;
    return lines.size();
  };
  CHECK(index_of("trap ") < index_of("echo "));
  CHECK(has_line(script, "rc=143"));
  CHECK(index_of("rc=143") < index_of("if ((!time_limit)); then"));
  CHECK(index_of("if ((!time_limit)); then") < index_of("  /opt/expt/bin/expt worker"));
  // A warning between that check and `worker=$!` found no worker: it is stopped once known.
  CHECK(index_of("  worker=$!") + 1 == index_of("  if ((time_limit)); then stop_worker; fi"));
  CHECK(lines.back() == "exit \"$rc\"");
  CHECK(script.find("scontrol requeue") == std::string::npos);
  // sbatch stops reading #SBATCH lines at the first command: every one comes before it.
  std::size_t last_sbatch = 0, first_command = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("#SBATCH", 0) == 0) last_sbatch = i;
    if (first_command == lines.size() && !lines[i].empty() && lines[i][0] != '#') first_command = i;
  }
  CHECK(last_sbatch < first_command);
}

TEST_CASE("slurm script: multi-rank workers run under srun with the pmix plugin, signalled through Slurm", "[slurm]") {
  SlurmJob j = job();
  j.ranks_per_trial = 2;
  j.workers = 1;
  j.time_limit_s = 3600;
  j.partition = "short";
  j.requeue = true;
  j.sets = {"sweep.ranks_per_trial=2", "base.train.steps=10"};
  const std::string script = slurm_script(j, "/o/%A_%a.out");
  CHECK(sbatch_lines(script) == std::vector<std::string>{"--job-name=expt-small", "--array=0-0", "--ntasks=2",
                                                         "--time=01:00:00", "--partition=short", "--signal=B:USR1@300",
                                                         "--requeue", "--output=/o/%A_%a.out", "--open-mode=append"});
  CHECK(worker_line(script) ==
        "  srun --mpi=pmix --ntasks=2 /opt/expt/bin/expt worker /home/a/study.yaml --out /shared/runs/s "
        "--set sweep.ranks_per_trial=2 --set base.train.steps=10 &");
  // srun would kill its step on a SIGTERM of its own: the ranks get SIGTERM from Slurm.
  CHECK(has_line(script, "stop_worker() { scancel --quiet --signal=TERM \"${SLURM_JOB_ID}.0\"; }"));
  // --requeue: a worker stopped by the time limit puts its array task back into the queue.
  CHECK(has_line(
      script,
      "if ((time_limit && rc == 143)); then scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"; "
      "fi"));
}

TEST_CASE("slurm script: paths and overrides with spaces or quotes are shell-quoted", "[slurm]") {
  SlurmJob j = job();
  j.study_file = "/home/a/my study.yaml";
  j.sets = {"base.task.text=it's"};
  CHECK(worker_line(slurm_script(j, "/o/x.out")) ==
        "  /opt/expt/bin/expt worker '/home/a/my study.yaml' --out /shared/runs/s --set 'base.task.text=it'\\''s' &");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("a$b") == "'a$b'");
  CHECK(shell_quote("/x/y-1_2.yaml") == "/x/y-1_2.yaml");
}

TEST_CASE("slurm script: --no-memory-check reaches every worker", "[slurm]") {
  SlurmJob j = job();
  j.no_memory_check = true;
  CHECK(worker_line(slurm_script(j, "/o/x.out")) ==
        "  /opt/expt/bin/expt worker /home/a/study.yaml --out /shared/runs/s --no-memory-check &");
  j.ranks_per_trial = 2;
  CHECK(worker_line(slurm_script(j, "/o/x.out")) ==
        "  srun --mpi=pmix --ntasks=2 /opt/expt/bin/expt worker /home/a/study.yaml --out /shared/runs/s "
        "--no-memory-check &");
}

TEST_CASE("slurm script: time limits and the SIGUSR1 margin", "[slurm]") {
  CHECK(parse_slurm_time("01:00:00") == 3600);
  CHECK(parse_slurm_time("00:05:30") == 330);
  CHECK(parse_slurm_time("10:00") == 600);
  CHECK(parse_slurm_time("2-03:00:00") == 2 * 86400 + 3 * 3600);
  CHECK(parse_slurm_time("36:00:00") == 36 * 3600);
  for (const char* bad :
       {"", "1", "00:00:00", "1:60:00", "1:00:60", "a:00:00", "1-25:00:00", "-1:00:00", "1:2:3:4", "01:00:00 "})
    CHECK_FALSE(parse_slurm_time(bad).has_value());
  CHECK(slurm_signal_margin_s(std::nullopt) == 300);
  CHECK(slurm_signal_margin_s(3600) == 300);
  CHECK(slurm_signal_margin_s(1200) == 120);
  CHECK(slurm_signal_margin_s(60) == 30);
  SlurmJob j = job();
  j.time_limit_s = 2 * 86400 + 5;
  const auto lines = sbatch_lines(slurm_script(j, "/o/x.out"));
  CHECK(std::find(lines.begin(), lines.end(), "--time=2-00:00:05") != lines.end());
  CHECK(std::find(lines.begin(), lines.end(), "--signal=B:USR1@300") != lines.end());
}
