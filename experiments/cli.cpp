#include "experiments/cli.hpp"

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "core/comm/mpi_communicator.hpp"
#include "core/config/loader.hpp"
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
    if (rank == 0) {
      for (const auto& err : e.errors()) std::fprintf(stderr, "%s\n", err.str().c_str());
      std::fprintf(stderr, "expt: %zu configuration error(s); nothing was run\n", e.errors().size());
    }
    return std::nullopt;
  }
}

ProgressMode parse_progress(const std::string& s) {
  if (s == "tty") return ProgressMode::tty;
  if (s == "plain") return ProgressMode::plain;
  if (s == "quiet") return ProgressMode::quiet;
  return ProgressMode::automatic;
}

int cmd_validate(const CommonArgs& args, bool print) {
  const auto cfg = load_or_report(args, 0);
  if (!cfg) return kExitUsage;
  if (print) {
    std::fputs(config::to_canonical_yaml(*cfg).c_str(), stdout);
  } else {
    std::fprintf(stderr, "%s: valid (trial id %s)\n", args.config.c_str(), config::config_hash(*cfg).c_str());
  }
  return kExitOk;
}

int cmd_run(int argc, char** argv, CommonArgs args, const std::string& out, const std::string& progress) {
  if (!out.empty()) args.sets.push_back("out=" + out);
  std::unique_ptr<comm::MpiSession> mpi;
  std::unique_ptr<comm::Communicator> comm;
  if (comm::launched_by_mpi()) {
    mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    comm = std::make_unique<comm::MpiCommunicator>(MPI_COMM_WORLD);
  } else {
    comm = std::make_unique<comm::LocalCommunicator>();
  }
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
    std::printf("%s\n", fmt::format("status {} | final eval loss {:.4f} | best {:.4f} | steps {} | {:.1f} s | {}",
                                    s.status, s.final_eval_loss, s.best_eval_loss, s.steps_done, s.wall_s,
                                    outcome.result.string())
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
  validate->add_flag("--print", print, "Print the resolved config with every default filled in");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (*validate) return cmd_validate(validate_args, print);
  return cmd_run(argc, argv, run_args, out, progress);
}

}  // namespace expt::experiments
