#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/util/allocation.hpp"
#include "experiments/cli/exit_codes.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/study/plan.hpp"
#include "experiments/trial/memory_estimate.hpp"

namespace expt::experiments {

namespace {

// What each trial is in WSD branching: "trunk of 3 branch(es)", "branch of <id> from step 240".
std::map<std::string, std::string> branch_roles(const std::vector<PlannedTrial>& trials) {
  std::map<std::string, const PlannedTrial*> longest;
  for (const PlannedTrial& t : trials)
    if (!t.trunk_key.empty()) {
      const PlannedTrial*& l = longest[t.trunk_key];
      if (l == nullptr || t.config.train.steps > l->config.train.steps) l = &t;
    }
  std::map<std::string, std::string> roles;
  std::map<std::string, int> branches;
  for (const PlannedTrial& t : trials) {
    const auto it = t.trunk_key.empty() ? longest.end() : longest.find(t.trunk_key);
    if (it == longest.end() || it->second->config.train.steps <= t.config.train.steps) continue;
    roles[t.id] = fmt::format("branch of {} from step {}", it->second->id, t.branch_step);
    ++branches[it->second->id];
  }
  for (const auto& [id, n] : branches) roles[id] = fmt::format("trunk of {} branch(es)", n);
  return roles;
}

std::string branch_line(const std::vector<PlannedTrial>& trials) {
  const BranchSummary b = summarise_branches(trials);
  const double saved = b.tokens_independent - b.tokens_branched;
  return fmt::format(
      "WSD branches: {} trunk(s), {} branch(es); {:.4g} training tokens instead of {:.4g} for independent runs "
      "({:.4g} saved, {:.1f}%)\n",
      b.trunks, b.branches, b.tokens_branched, b.tokens_independent, saved,
      b.tokens_independent > 0 ? 100.0 * saved / b.tokens_independent : 0.0);
}

// search.halving: per group the live points at each rung and the tokens it trains at most and
// at least, against branches alone and independent runs.
std::string halving_lines(const Planner& planner) {
  const Halving& h = planner.study().halving;
  const std::vector<HalvingSchedule> schedules = planner.halving_schedule();
  if (schedules.empty()) return "";
  std::string text = fmt::format(
      "successive halving (keep {}, min_points {}){}: points live at each rung; a pruned point's trunk stops at "
      "the fork point of the rung that pruned it\n",
      h.keep, h.min_points,
      planner.study().strategy == Strategy::coordinate_descent ? ", on the first round of each cell" : "");
  double worst = 0, best = 0, branched = 0, independent = 0;
  for (const HalvingSchedule& s : schedules) {
    std::string rungs;
    for (std::size_t k = 0; k < s.ratios.size(); ++k)
      rungs += fmt::format("{}{} at x{}", k ? " -> " : "", s.live[k], s.ratios[k]);
    text += fmt::format("  {}: {}; {:.4g} training tokens at most, {:.4g} at least\n", s.group, rungs, s.tokens_worst,
                        s.tokens_best);
    worst += s.tokens_worst;
    best += s.tokens_best;
    branched += s.tokens_branched;
    independent += s.tokens_independent;
  }
  const auto pct = [](double part, double whole) { return whole > 0 ? 100.0 * (1.0 - part / whole) : 0.0; };
  text += fmt::format(
      "halving: {:.4g} training tokens at most and {:.4g} at least, instead of {:.4g} with branches alone ({:.1f}% to "
      "{:.1f}% saved) and {:.4g} for independent runs ({:.1f}% to {:.1f}% saved)\n",
      worst, best, branched, pct(worst, branched), pct(best, branched), independent, pct(worst, independent),
      pct(best, independent));
  return text;
}

// The memory estimate of each trial (per rank), computed once per distinct set of the keys it
// depends on (model, task, batch and ranks, the optimizer's type and sizes: not learning rates,
// betas, decays or seeds), since estimating builds the task.
class MemoryColumn {
 public:
  double per_rank(const PlannedTrial& t) {
    std::string key;
    for (const auto& [path, value] : config::flatten_config(t.config)) {
      const bool sizes = path.rfind("model.", 0) == 0 || path.rfind("task.", 0) == 0 ||
                         path.rfind("train.batch_size", 0) == 0 || path.rfind("train.ranks", 0) == 0 ||
                         path.rfind("train.deterministic", 0) == 0 || path.rfind("optimizer.", 0) == 0;
      const bool rate = path.find("lr") != std::string::npos || path.find("beta") != std::string::npos ||
                        path.find("decay") != std::string::npos || path.find("eps") != std::string::npos ||
                        path.find("momentum") != std::string::npos;
      if (sizes && !rate) key += path + "=" + value + "\n";
    }
    auto it = by_key_.find(key);
    if (it == by_key_.end()) it = by_key_.emplace(key, estimate_trial_memory(t.config).total()).first;
    by_trial_[t.id] = it->second;
    return it->second;
  }
  // Per trial: per rank x ranks (the trial's ranks on one host).
  std::vector<double> per_trial(int ranks) const {
    std::vector<double> all;
    for (const auto& [id, bytes] : by_trial_) all.push_back(bytes * ranks);
    return all;
  }

 private:
  std::map<std::string, double> by_key_, by_trial_;
};

std::string trial_line(const PlannedTrial& t, MemoryColumn& memory, const std::map<std::string, std::string>& roles) {
  const auto role = roles.find(t.id);
  return fmt::format("{}  {:<22} seed {:<3} steps {:<6} params {:<8} memory {:<9} {}{}", t.id, t.cell_name, t.seed,
                     t.config.train.steps, t.n_params, util::format_bytes(memory.per_rank(t) * t.config.train.ranks),
                     t.point, role == roles.end() ? std::string() : "  [" + role->second + "]");
}

// The peak of k trials at once on one host (the k largest), for k = 1, 2, 4, ... up to the trial
// count, and how many fit in the memory available here.
std::string memory_summary(const MemoryColumn& memory, int ranks_per_trial) {
  std::vector<double> bytes = memory.per_trial(ranks_per_trial);
  if (bytes.empty()) return "";
  std::sort(bytes.rbegin(), bytes.rend());
  std::string text = fmt::format(
      "memory per trial (all its {} rank(s) on one host): largest {}; peak with k trials at once on one host:",
      ranks_per_trial, util::format_bytes(bytes.front()));
  double sum = 0;
  std::size_t next = 1;
  for (std::size_t k = 1; k <= bytes.size(); ++k) {
    sum += bytes[k - 1];
    if (k == next || k == bytes.size()) {
      text += fmt::format(" k={} {}", k, util::format_bytes(sum));
      next *= 2;
    }
  }
  text += "\n";
  if (const auto available = available_memory()) {
    std::size_t fit = 0;
    for (double s = 0; fit < bytes.size() && (s += bytes[fit]) <= available->bytes;) ++fit;
    text += fmt::format("  {} available here ({}): {}\n", util::format_bytes(available->bytes), available->source,
                        fit == bytes.size() ? "every trial at once fits"
                        : fit == 0          ? "the largest trial does NOT fit (expt refuses to start it)"
                                            : fmt::format("the {} largest trials fit at once", fit));
  }
  return text;
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
    MemoryColumn memory;
    if (study.strategy == Strategy::coordinate_descent) {
      std::size_t total = 0;
      std::vector<CdRound> rounds;
      std::vector<PlannedTrial> first_round;
      for (std::size_t c = 0; c < planner.cells().size(); ++c) {
        rounds.push_back(planner.cd_round(c, {}));
        first_round.insert(first_round.end(), rounds.back().todo.begin(), rounds.back().todo.end());
      }
      const auto roles = branch_roles(first_round);
      for (std::size_t c = 0; c < planner.cells().size(); ++c) {
        const CdRound& round = rounds[c];
        out << fmt::format("cell {}: first round around {}: {} trial(s)\n", planner.cells()[c].name, round.centre_text,
                           round.todo.size());
        for (const PlannedTrial& t : longest_first(round.todo)) out << "  " << trial_line(t, memory, roles) << "\n";
        total += round.todo.size();
        dropped.insert(dropped.end(), round.dropped.begin(), round.dropped.end());
      }
      out << fmt::format("{} trial(s) in the first round; later rounds depend on the results\n", total);
      if (study.branching) out << "first round: " << branch_line(first_round);
      out << halving_lines(planner);
    } else {
      out << fmt::format("{} trial(s), longest first:\n", planner.static_trials().size());
      const auto roles = branch_roles(planner.static_trials());
      for (const PlannedTrial& t : longest_first(planner.static_trials()))
        out << "  " << trial_line(t, memory, roles) << "\n";
      if (study.branching) out << branch_line(planner.static_trials());
      out << halving_lines(planner);
    }
    out << memory_summary(memory, study.ranks_per_trial);
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: error: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace expt::experiments
