#include "experiments/cli/replay_command.hpp"

#include <cstdio>

#include "core/config/loader.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/trial/grad_trace.hpp"

namespace expt::experiments {

CLI::App* add_replay_command(CLI::App& app, ReplayArgs& args) {
  auto* replay =
      app.add_subcommand("replay", "Apply a config's optimizer to a gradient trace and write the parameter trajectory");
  replay->add_option("--optimizer", args.optimizer_config, "Trial config whose optimizer section is used (YAML)")
      ->required();
  replay->add_option("--set", args.sets, "Override a key of that config (repeatable)");
  replay->add_option("--trace", args.trace, "Gradient trace (docs/trace-format.md)")->required();
  replay->add_option("--out", args.out, "Output HDF5 file: /params/<name> [steps+1, ...shape]")->required();
  return replay;
}

int replay_command(const ReplayArgs& args) {
  config::TrialConfig cfg;
  try {
    cfg = config::load_trial_config(args.optimizer_config, args.sets);
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e);
    return kExitUsage;
  }
  try {
    const auto steps = replay_grad_trace(cfg.optimizer, args.trace, args.out);
    std::printf("replayed %lld steps of %s with %s; trajectory in %s\n", static_cast<long long>(steps),
                args.trace.c_str(), cfg.optimizer.type.c_str(), args.out.c_str());
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace expt::experiments
