#include "experiments/cli.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/analyze_command.hpp"
#include "core/comm/mpi_communicator.hpp"
#include "core/config/loader.hpp"
#include "experiments/bench_command.hpp"
#include "experiments/data_commands.hpp"
#include "experiments/replay_command.hpp"
#include "experiments/sweep_commands.hpp"
#include "experiments/trainer.hpp"

namespace expt::experiments {

namespace {

struct CommonArgs {
  std::string config;
  std::vector<std::string> sets;
};

// Loads and validates; on error prints every `file:line:col: key.path: message` and returns nullopt.
std::optional<config::TrialConfig> load_or_report(const CommonArgs& args, int rank) {
  try {
    return config::load_trial_config(args.config, args.sets);
  } catch (const config::ConfigErrors& e) {
    if (rank == 0) config::report_errors(e);
    return std::nullopt;
  }
}

ProgressMode parse_progress(const std::string& s) {
  if (s == "tty") return ProgressMode::tty;
  if (s == "plain") return ProgressMode::plain;
  if (s == "quiet") return ProgressMode::quiet;
  return ProgressMode::automatic;
}

int cmd_validate(const CommonArgs& args, bool print, bool minimal) {
  const auto cfg = load_or_report(args, 0);
  if (!cfg) return kExitUsage;
  if (print) std::fputs(config::to_canonical_yaml(*cfg).c_str(), stdout);
  if (minimal) std::fputs(config::minimal_yaml(*cfg).c_str(), stdout);
  if (!print && !minimal) {
    std::fprintf(stderr, "%s: valid (trial id %s)\n", args.config.c_str(), config::config_hash(*cfg).c_str());
  }
  return kExitOk;
}

int cmd_run(int argc, char** argv, CommonArgs args, const std::string& out, const std::string& progress) {
  if (!out.empty()) args.sets.push_back("out=" + out);
  const comm::WorldCommunicator world = comm::open_world_communicator(&argc, &argv);
  comm::Communicator* comm = world.comm.get();
  const int rank = comm->rank();
  const auto cfg = load_or_report(args, rank);
  if (!cfg) return kExitUsage;
  if (cfg->train.ranks != comm->size()) {
    if (rank == 0)
      std::fprintf(stderr,
                   "expt: train.ranks is %d but this run has %d rank(s); launch `mpirun -np %d expt run ...` or set "
                   "train.ranks\n",
                   cfg->train.ranks, comm->size(), cfg->train.ranks);
    return kExitUsage;
  }
  install_stop_signal_handlers();
  TrainerOptions options;
  options.progress = rank == 0 ? parse_progress(progress) : ProgressMode::quiet;
  options.hooks = TrainerHooks::from_environment();
  try {
    const auto outcome = run_trial(*cfg, *comm, options);
    if (rank != 0) return outcome.interrupted ? 128 + outcome.signal : kExitOk;
    if (outcome.interrupted) {
      std::fprintf(stderr, "expt: interrupted at step %lld; checkpoint written. Run the same command to resume.\n",
                   static_cast<long long>(outcome.summary.steps_done));
      return 128 + outcome.signal;
    }
    const auto& s = outcome.summary;
    if (outcome.already_finished)
      std::fprintf(stderr, "expt: %s already finished (%s); nothing to do\n", cfg->out.c_str(), s.status.c_str());
    std::printf("%s\n",
                fmt::format("status {} | final eval loss {:.4f} | best {:.4f} | steps {} | {:.1f} s | {}", s.status,
                            s.final_eval_loss, s.best_eval_loss, s.steps_done, s.wall_s, outcome.result.string())
                    .c_str());
    if (s.status == "FAILED") {
      std::fprintf(stderr, "expt: trial FAILED: %s\n", s.message.c_str());
      return kExitFailed;
    }
    return s.status == "DIVERGED" ? kExitDiverged : kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"expt: distributed optimizer and architecture research on small sequence models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("expt 0.1.0"));

  CommonArgs run_args;
  std::string out, progress = "auto";
  auto* run = app.add_subcommand("run", "Train one trial (or resume it) from a config file");
  run->add_option("config", run_args.config, "Trial config (YAML)")->required()->check(CLI::ExistingFile);
  run->add_option("--set", run_args.sets, "Override a key: --set optimizer.lr=3e-4 (repeatable)");
  run->add_option("--out", out, "Output directory (overrides the config's `out`)");
  run->add_option("--progress", progress, "Progress display")->check(CLI::IsMember({"auto", "tty", "plain", "quiet"}));

  CommonArgs validate_args;
  bool print = false;
  auto* validate = app.add_subcommand("validate", "Check a config; --print writes the resolved canonical YAML");
  validate->add_option("config", validate_args.config, "Trial config (YAML)")->required();
  validate->add_option("--set", validate_args.sets, "Override a key (repeatable)");
  auto* print_flag = validate->add_flag("--print", print, "Print the resolved config with every default filled in");
  bool minimal = false;
  validate->add_flag("--minimal", minimal, "Print the keys that differ from their defaults (what the trial id hashes)")
      ->excludes(print_flag);

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
  std::string status_dir;
  auto* status = app.add_subcommand("status", "Print the live status table of a sweep directory");
  status->add_option("dir", status_dir, "Sweep output directory")->required();
  analysis::AnalyzeCommandArgs analyze_args;
  auto* analyze = app.add_subcommand("analyze", "Best configs, ablations and speedups of a sweep (docs/analysis.md)");
  analysis::add_analyze_options(*analyze, analyze_args);

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (*validate) return cmd_validate(validate_args, print, minimal);
  if (*data) {
    const auto cfg = load_or_report(data_args, 0);
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
  if (*sweep) return sweep_command(argc, argv, study_args.config, study_args.sets, sweep_out);
  if (*status) return status_command(status_dir, std::cout);
  if (*analyze) return analysis::analyze_command(analyze_args, std::cout);
  if (*replay) return replay_command(replay_args);
  if (*bench) return bench_command(argc, argv, bench_args.config, bench_args.sets, bench_options);
  return cmd_run(argc, argv, run_args, out, progress);
}

}  // namespace expt::experiments
