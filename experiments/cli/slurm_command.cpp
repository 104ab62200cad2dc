#include "experiments/cli/slurm_command.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "core/config/config_error.hpp"
#include "core/io/atomic_file.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/slurm_script.hpp"
#include "experiments/study/plan.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

// The first DIR/slurm/job-K.sbatch that does not exist yet (K from 1).
fs::path next_script_path(const fs::path& slurm_dir) {
  for (int k = 1;; ++k) {
    fs::path p = slurm_dir / fmt::format("job-{}.sbatch", k);
    if (!fs::exists(p)) return p;
  }
}

// Runs `sbatch --parsable SCRIPT`; returns its output (the job id) or nullopt when it failed (its
// error went to stderr).
std::optional<std::string> run_sbatch(const fs::path& script) {
  const std::string command = "sbatch --parsable " + shell_quote(script.string());
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  if (status != 0) return std::nullopt;
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

}  // namespace

CLI::App* add_slurm_command(CLI::App& app, SlurmSubmitArgs& args) {
  auto* slurm = app.add_subcommand("slurm", "Run a study on a Slurm cluster (docs/distributed.md)");
  slurm->require_subcommand(1);
  auto* submit = slurm->add_subcommand(
      "submit", "Write the sbatch script of a job array of `expt worker`s, print it and submit it");
  submit->add_option("study", args.study, "Study file (YAML)")->required();
  submit->add_option("--set", args.sets, "Override a study key (repeatable; passed to every worker)");
  submit->add_option("--out", args.out, "Sweep directory, on a filesystem every node sees (default runs/<study>)");
  submit->add_option("--workers", args.workers, "Workers: the tasks of the job array")
      ->required()
      ->check(CLI::Range(1, 100000));
  submit
      ->add_option("--ranks-per-trial", args.ranks_per_trial,
                   "Ranks of each worker (sets sweep.ranks_per_trial; default: the study's)")
      ->check(CLI::Range(1, 1 << 20));
  submit->add_option("--time", args.time, "Time limit of each worker, HH:MM:SS (default: the partition's)");
  submit->add_option("--partition", args.partition, "Slurm partition (default: the cluster's default)");
  submit->add_flag("--requeue", args.requeue, "Let Slurm requeue a task (node failure, preemption); it resumes");
  submit->add_flag("--no-memory-check", args.no_memory_check,
                   "Pass --no-memory-check to every worker (start trials above the memory estimate)");
  submit->add_flag("--dry-run", args.dry_run, "Write and print the script, do not submit it");
  return slurm;
}

int slurm_submit_command(const SlurmSubmitArgs& args, std::ostream& out) {
  std::vector<std::string> sets = args.sets;
  if (args.ranks_per_trial > 0) sets.push_back(fmt::format("sweep.ranks_per_trial={}", args.ranks_per_trial));
  std::optional<int> time_limit_s;
  if (!args.time.empty()) {
    time_limit_s = parse_slurm_time(args.time);
    if (!time_limit_s) {
      std::fprintf(stderr, "expt: --time %s: expected HH:MM:SS (or MM:SS, D-HH:MM:SS), more than zero\n",
                   args.time.c_str());
      return kExitUsage;
    }
  }
  // The whole study is validated here, as `expt plan` does, so that a bad study fails now and not in
  // every array task once the job starts.
  std::optional<Study> study;
  try {
    study = load_study(args.study, sets);
    const Planner planner(*study);
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    return kExitUsage;
  }
  SlurmJob job;
  try {
    job.expt = fs::canonical("/proc/self/exe").string();
    job.study_file = fs::absolute(args.study).lexically_normal().string();
    job.out = fs::absolute(args.out.empty() ? fs::path("runs") / study->name : fs::path(args.out))
                  .lexically_normal()
                  .string();
    if (job.out.size() > 1 && job.out.back() == '/') job.out.pop_back();
    job.sets = sets;
    job.name = study->name;
    job.workers = args.workers;
    job.ranks_per_trial = study->ranks_per_trial;
    job.time_limit_s = time_limit_s;
    job.partition = args.partition;
    job.requeue = args.requeue;
    job.no_memory_check = args.no_memory_check;

    const fs::path slurm_dir = fs::path(job.out) / "slurm";
    fs::create_directories(slurm_dir);
    const fs::path script_path = next_script_path(slurm_dir);
    const std::string script = slurm_script(job, (slurm_dir / "worker-%A_%a.out").string());
    io::write_file_atomic(script_path, script);
    out << script;
    out << fmt::format("expt: wrote {}\n", script_path.string());
    if (args.dry_run) {
      out << fmt::format("expt: not submitted (--dry-run); submit it with `sbatch {}`\n", script_path.string());
      out.flush();
      return kExitOk;
    }
    out.flush();
    const auto job_id = run_sbatch(script_path);
    if (!job_id) {
      std::fprintf(stderr, "expt: sbatch %s failed; the script is kept\n", script_path.c_str());
      return kExitFailed;
    }
    out << fmt::format("expt: submitted job {} ({} worker(s)); `expt status {}` shows the sweep\n", *job_id,
                       job.workers, job.out);
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace expt::experiments
