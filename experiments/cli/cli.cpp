#include "experiments/cli/cli.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/analyze_command.hpp"
#include "build_provenance.hpp"  // EXPT_GIT_COMMIT, generated at build time (CMakeLists.txt)
#include "core/config/loader.hpp"
#include "experiments/cli/bench_command.hpp"
#include "experiments/cli/data_commands.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/machine_peak.hpp"
#include "experiments/cli/replay_command.hpp"
#include "experiments/cli/serve_command.hpp"
#include "experiments/cli/slurm_command.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/cli/trial_commands.hpp"
#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"

namespace expt::experiments {

namespace {

// Rank 0 of an mpirun/srun job, or a process started alone (before MPI is initialised).
bool first_process_of_job() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::string(value) == "0";
  return true;
}

struct CommonArgs {
  std::string config;
  std::vector<std::string> sets;
};

// `expt --version`: the version, the commit this binary was built from and its build type
// (CMakeLists.txt), and the float GEMM backend with the machine it runs on.
std::string version_text() {
  return fmt::format("expt {}\ncommit {}\nbuild type {}\nGEMM backend {}: {}", EXPT_VERSION, EXPT_GIT_COMMIT,
                     EXPT_BUILD_TYPE, kernels::gemm_backend_name(kernels::gemm_backend()),
                     kernels::gemm_machine_summary());
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"expt: distributed optimizer and architecture research on small sequence models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text);

  CommonArgs run_args;
  std::string out, progress = "auto";
  auto* run = app.add_subcommand("run", "Train one trial (or resume it) from a config file");
  run->add_option("config", run_args.config, "Trial config (YAML)")->required()->check(CLI::ExistingFile);
  run->add_option("--set", run_args.sets, "Override a key: --set optimizer.lr=3e-4 (repeatable)");
  run->add_option("--out", out, "Output directory (overrides the config's `out`)");
  run->add_option("--progress", progress, "Progress display")->check(CLI::IsMember({"auto", "tty", "plain", "quiet"}));
  bool no_memory_check = false;
  const char* no_memory_check_help =
      "Start trials even when their memory estimate exceeds the memory available (as EXPT_NO_MEMORY_CHECK=1)";
  run->add_flag("--no-memory-check", no_memory_check, no_memory_check_help);

  CommonArgs validate_args;
  bool print = false;
  auto* validate =
      app.add_subcommand("validate", "Check a config or a study file; --print writes the resolved canonical YAML");
  validate->add_option("config", validate_args.config, "Trial config or study file (YAML)")->required();
  validate->add_option("--set", validate_args.sets, "Override a key (repeatable)");
  auto* print_flag = validate->add_flag("--print", print, "Print the resolved config with every default filled in");
  bool minimal = false;
  validate->add_flag("--minimal", minimal, "Print the keys that differ from their defaults (what the trial id hashes)")
      ->excludes(print_flag);

  auto* types = app.add_subcommand("types", "Print the mixer and optimizer types with their keys and defaults (JSON)");

  // expt data preview|dump: what the trainer would see, decoded or as arrays.
  auto* data = app.add_subcommand("data", "Inspect a config's task data");
  data->require_subcommand(1);
  CommonArgs data_args;
  int preview_count = 4;
  auto* preview = data->add_subcommand("preview", "Print a few decoded samples with their labels");
  preview->add_option("config", data_args.config, "Trial config (YAML)")->required();
  preview->add_option("--set", data_args.sets, "Override a key (repeatable)");
  preview->add_option("--count", preview_count, "Number of samples")->check(CLI::Range(1, 1000));
  std::string split = "train";
  int dump_count = 16;
  std::string dump_out;
  auto* dump = data->add_subcommand("dump", "Write inputs and targets of the first samples to HDF5");
  dump->add_option("config", data_args.config, "Trial config (YAML)")->required();
  dump->add_option("--set", data_args.sets, "Override a key (repeatable)");
  dump->add_option("--split", split, "train or eval")->check(CLI::IsMember({"train", "eval"}));
  dump->add_option("--count", dump_count, "Number of sequences")->check(CLI::Range(1, 1 << 24));
  dump->add_option("--out", dump_out, "Output HDF5 file")->required();

  // Sweeps: plan, run (under mpirun or alone), status.
  CommonArgs study_args;
  std::string sweep_out;
  auto* plan = app.add_subcommand("plan", "Print the trials a study would run (first round for coordinate descent)");
  plan->add_option("study", study_args.config, "Study file (YAML)")->required();
  plan->add_option("--set", study_args.sets, "Override a study key (repeatable)");
  auto* sweep = app.add_subcommand("sweep", "Run a study: rank 0 coordinates, the other ranks train in groups");
  sweep->add_option("study", study_args.config, "Study file (YAML)")->required();
  sweep->add_option("--set", study_args.sets, "Override a study key (repeatable)");
  sweep->add_option("--out", sweep_out, "Sweep output directory (overrides the study's `out`)");
  bool add_to_existing = false;
  sweep->add_flag("--add-to-existing", add_to_existing,
                  "Add this study's trials to a directory that holds another study's sweep");
  sweep->add_flag("--no-memory-check", no_memory_check, no_memory_check_help);
  auto* worker = app.add_subcommand(
      "worker", "Claim the study's next runnable trial by lease, train it, repeat (any number of workers)");
  worker->add_option("study", study_args.config, "Study file (YAML)")->required();
  worker->add_option("--set", study_args.sets, "Override a study key (repeatable)");
  worker->add_option("--out", sweep_out, "Sweep output directory (overrides the study's `out`)");
  worker->add_flag("--add-to-existing", add_to_existing,
                   "Add this study's trials to a directory that holds another study's sweep");
  worker->add_flag("--no-memory-check", no_memory_check, no_memory_check_help);
  std::string status_dir;
  double watch_s = 0;
  auto* status = app.add_subcommand("status", "Print the live status table of a sweep directory");
  status->add_option("dir", status_dir, "Sweep output directory")->required();
  status->add_option("--watch", watch_s, "Redraw every SECONDS (default 2) until the sweep stops")
      ->expected(0, 1)
      ->default_str("2")
      ->check(CLI::PositiveNumber);
  SlurmSubmitArgs slurm_args;
  auto* slurm = add_slurm_command(app, slurm_args);
  analysis::AnalyzeCommandArgs analyze_args;
  auto* analyze = app.add_subcommand("analyze", "Best configs, ablations and speedups of a sweep (docs/analysis.md)");
  analysis::add_analyze_options(*analyze, analyze_args);
  ServeArgs serve_args;
  auto* serve = app.add_subcommand("serve", "Live dashboard of sweep or trial directories in a browser");
  add_serve_options(*serve, serve_args);

  ReplayArgs replay_args;
  auto* replay = add_replay_command(app, replay_args);

  // expt bench: training throughput, MFU, phases and memory of one config (docs/performance.md).
  CommonArgs bench_args;
  BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench", "Measure training throughput, MFU, phase times and memory of a config");
  bench->add_option("config", bench_args.config, "Trial config (YAML)")->required();
  bench->add_option("--set", bench_args.sets, "Override a key (repeatable)");
  bench->add_option("--steps", bench_options.steps, "Timed steps")->check(CLI::Range(1, 1000000));
  bench->add_option("--warmup", bench_options.warmup, "Untimed steps first")->check(CLI::Range(0, 1000000));
  bench->add_option("--format", bench_options.format, "Output")->check(CLI::IsMember({"table", "json"}));
  bench->add_option("--dump", bench_options.dump_dir, "Write initial weights, first batches and losses here");
  bench->add_option("--threads", bench_options.threads,
                    "BLAS threads per rank: a number, or auto = this node's cores / its ranks (default 1)");
  bench->add_flag("--blas-products", bench_options.blas_products,
                  "Also time every BLAS product of the step by shape (calls, ms and GFLOP/s per step)");
  // expt bench's child process for one OpenBLAS core type (experiments/cli/machine_peak.hpp).
  auto* sgemm_probe = app.add_subcommand("sgemm-probe", "")->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (*run || *sweep || *worker || *bench || *replay) {
    // The GEMM backend (EXPT_GEMM_BACKEND) is resolved before anything trains, and kernels
    // narrower than the CPU are said once per job, by the first process (docs/performance.md).
    try {
      const auto warning = kernels::gemm_startup_warning();
      if (warning && first_process_of_job()) std::fprintf(stderr, "expt: warning: %s\n", warning->c_str());
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "expt: error: %s\n", e.what());
      return kExitUsage;
    }
  }
  if (*validate) return validate_command(validate_args.config, validate_args.sets, print, minimal);
  if (*types) return types_command(std::cout);
  if (*data) {
    const auto cfg = load_config_or_report(data_args.config, data_args.sets, 0);
    if (!cfg) return kExitUsage;
    try {
      if (*preview) return data_preview(*cfg, preview_count, std::cout);
      return data_dump(*cfg, split, dump_count, dump_out);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "expt: error: %s\n", e.what());
      return kExitFailed;
    }
  }
  if (*plan) return plan_command(study_args.config, study_args.sets, std::cout);
  // Every trial of a sweep or worker reads the switch from the environment (memory_check_disabled),
  // on every rank: each rank of an mpirun/srun job parses the same arguments.
  if ((*sweep || *worker) && no_memory_check) ::setenv("EXPT_NO_MEMORY_CHECK", "1", 1);
  if (*sweep) return sweep_command(argc, argv, study_args.config, study_args.sets, sweep_out, add_to_existing);
  if (*worker) return worker_command(argc, argv, study_args.config, study_args.sets, sweep_out, add_to_existing);
  if (*status) return status_command(status_dir, std::cout, status->count("--watch") > 0 ? watch_s : 0);
  if (*slurm) return slurm_submit_command(slurm_args, std::cout);
  if (*analyze) return analysis::analyze_command(analyze_args, std::cout);
  if (*serve) return serve_command(serve_args);
  if (*replay) return replay_command(replay_args);
  if (*sgemm_probe) return sgemm_probe_command(std::cout);
  if (*bench) return bench_command(argc, argv, bench_args.config, bench_args.sets, bench_options);
  return run_command(argc, argv, run_args.config, run_args.sets, out, progress, !no_memory_check);
}

}  // namespace expt::experiments
