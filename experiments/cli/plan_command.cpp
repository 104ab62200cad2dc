#include <fmt/format.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/study/plan.hpp"

namespace expt::experiments {

namespace {

std::string trial_line(const PlannedTrial& t) {
  return fmt::format("{}  {:<22} seed {:<3} steps {:<6} params {:<8} {}", t.id, t.cell_name, t.seed,
                     t.config.train.steps, t.n_params, t.point);
}

}  // namespace

int plan_command(const std::string& study_path, const std::vector<std::string>& sets, std::ostream& out) {
  try {
    const Study study = load_study(study_path, sets);
    const Planner planner(study);
    out << fmt::format("study {}: strategy {}, {} cell(s), {} seed(s), {} rank(s) per trial\n", study.name,
                       strategy_name(study.strategy), planner.cells().size(), study.seeds.size(),
                       study.ranks_per_trial);
    std::vector<DroppedPoint> dropped = planner.dropped();
    if (study.strategy == Strategy::coordinate_descent) {
      std::size_t total = 0;
      for (std::size_t c = 0; c < planner.cells().size(); ++c) {
        const CdRound round = planner.cd_round(c, {});
        out << fmt::format("cell {}: first round around {}: {} trial(s)\n", planner.cells()[c].name, round.centre_text,
                           round.todo.size());
        for (const PlannedTrial& t : longest_first(round.todo)) out << "  " << trial_line(t) << "\n";
        total += round.todo.size();
        dropped.insert(dropped.end(), round.dropped.begin(), round.dropped.end());
      }
      out << fmt::format("{} trial(s) in the first round; later rounds depend on the results\n", total);
    } else {
      out << fmt::format("{} trial(s), longest first:\n", planner.static_trials().size());
      for (const PlannedTrial& t : longest_first(planner.static_trials())) out << "  " << trial_line(t) << "\n";
    }
    if (const Confirm& c = study.confirm; c.seeds > 0) {
      std::string extra;
      for (std::uint64_t seed : c.extra_seeds) extra += fmt::format("{}{}", extra.empty() ? "" : ", ", seed);
      out << fmt::format(
          "up to {} confirmation trial(s) (search.confirm): once a cell's search is finished, its best point and "
          "every point within {} of its loss{} run again with seed(s) {}; which points is known only then\n",
          planner.max_confirmation_trials(), config::format_double(c.band),
          c.max_points > 0 ? fmt::format(" (at most {} per cell)", c.max_points) : std::string(), extra);
    }
    if (!dropped.empty()) {
      out << fmt::format("{} infeasible point(s) dropped:\n", dropped.size());
      for (const DroppedPoint& d : dropped) out << fmt::format("  {} {}: {}\n", d.cell, d.point, d.reason);
    }
    return kExitOk;
  } catch (const config::ConfigErrors& e) {
    config::report_errors(e, "study");
    return kExitUsage;
  }
}

}  // namespace expt::experiments
