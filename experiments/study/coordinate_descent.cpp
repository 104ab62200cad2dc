// Coordinate descent (docs/sweeps.md): each cell's search moves from the base config's point to
// the best point of its neighbourhood (every point one axis value away), round by round. A round is
// a pure function of (study, finished results), so a restarted sweep replays the same rounds.
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "experiments/study/plan.hpp"
#include "experiments/study/planner_impl.hpp"

namespace expt::experiments {

Point Planner::Impl::cd_start_point(std::size_t cell, ErrorList& errors) const {
  const std::vector<Axis>& ax = axes(cell);
  Point start(ax.size(), 0);
  ErrorList base_errors;
  schema::Reader br(base_errors);
  const auto base_flat = config::flatten_config(read(cell_docs[cell], br));
  const auto value_of = [](const std::vector<std::pair<std::string, std::string>>& flat, const std::string& key) {
    for (const auto& [k, v] : flat)
      if (k == key) return v;
    return std::string();
  };
  for (std::size_t k = 0; k < ax.size(); ++k) {
    const std::string key = target_path(ax[k]);
    const std::string base_value = value_of(base_flat, key);
    bool found = false;
    for (std::size_t i = 0; i < ax[k].values.size() && !found; ++i) {
      YamlNode doc = cell_docs[cell];
      config::apply_override(doc, {ax[k].target, target_value(ax[k], ax[k].values[i])});
      ErrorList e;
      schema::Reader vr(e);
      const auto flat = config::flatten_config(read(doc, vr));
      if (e.empty() && value_of(flat, key) == base_value) {
        start[k] = i;
        found = true;
      }
    }
    if (!found && !base_value.empty())
      errors.add(ax[k].pos, ax[k].key,
                 cat("coordinate descent starts at the base config, where ", key, " is ", base_value, " (",
                     cells[cell].name, "); that value is not among this axis's values"));
  }
  return start;
}

CdRound Planner::cd_round(std::size_t cell, const ResultStore& store) const {
  if (study_.strategy != Strategy::coordinate_descent)
    throw std::logic_error("cd_round: the study's strategy is not coordinate_descent");
  Impl& im = *impl_;
  const std::vector<Axis>& ax = im.axes(cell);
  CdRound round;
  round.cell = cell;
  std::set<std::string> dropped_seen;

  // neighbourhood(c) = {c} and every point one value away from c, feasible ones only.
  const auto neighbourhood = [&](const Point& c) {
    std::vector<Point> n;
    const auto add = [&](const Point& p) {
      const Materialised& m = im.at(cell, p);
      if (m.trial) {
        n.push_back(p);
      } else {
        const std::string text = im.point_text(cell, im.point_values(cell, p));
        if (dropped_seen.insert(text).second)
          round.dropped.push_back(
              DroppedPoint{cells_[cell].name, text, m.infeasible.empty() ? m.errors.front().str() : m.infeasible});
      }
    };
    add(c);
    for (std::size_t k = 0; k < ax.size(); ++k)
      for (std::size_t i = 0; i < ax[k].values.size(); ++i)
        if (i != c[k]) {
          Point p = c;
          p[k] = i;
          add(p);
        }
    return n;
  };
  // A point is done when every seed's trial is; its loss is their mean (+inf if any is +inf).
  const auto loss_of = [&](const Point& p) -> std::optional<double> {
    double sum = 0;
    for (const PlannedTrial& t : im.per_seed(*im.at(cell, p).trial)) {
      const auto it = store.find(t.id);
      if (it == store.end()) return std::nullopt;
      sum += std::isfinite(it->second) ? it->second : std::numeric_limits<double>::infinity();
    }
    return sum / static_cast<double>(study_.seeds.size());
  };
  const auto missing = [&](const Point& c) {
    std::size_t n = 0;
    for (const Point& p : neighbourhood(c)) n += loss_of(p) ? 0 : 1;
    return n;
  };

  // Replays the rounds from the start: a round whose neighbourhood is complete picks the next
  // centre (the best point done so far, or the near-best point closest to finishing when that
  // saves at least recentre_min_saving trials); the first incomplete round is the current one.
  std::map<Point, double> known;
  Point centre = cd_start(cell);
  for (;;) {
    const std::vector<Point> hood = neighbourhood(centre);
    bool complete = true;
    for (const Point& p : hood) {
      if (const auto l = loss_of(p)) {
        known[p] = *l;
      } else {
        complete = false;
        for (PlannedTrial& t : im.per_seed(*im.at(cell, p).trial))
          if (store.find(t.id) == store.end()) round.todo.push_back(std::move(t));
      }
    }
    round.centre = centre;
    if (!complete || known.empty()) {
      round.converged = known.empty() && complete;
      break;
    }
    // L* and the near-best set S (ties go to the first point in index order).
    Point best = known.begin()->first;
    for (const auto& [p, l] : known)
      if (l < known[best]) best = p;
    round.best_loss = known[best];
    std::vector<Point> near;
    for (const auto& [p, l] : known)
      if (l < round.best_loss + study_.tolerance) near.push_back(p);
    Point next = best;
    const std::size_t best_missing = missing(best);
    std::size_t fewest = best_missing;
    for (const Point& p : near) {
      const std::size_t m = missing(p);
      if (m < fewest && m + static_cast<std::size_t>(study_.recentre_min_saving) <= best_missing) {
        fewest = m;
        next = p;
      }
    }
    if (next == centre) {
      round.converged = true;
      for (const Point& p : near) round.near_best.push_back(im.point_text(cell, im.point_values(cell, p)));
      for (std::size_t k = 0; k < ax.size(); ++k) {
        const std::size_t n = ax[k].values.size();
        if (n < 2 || (centre[k] != 0 && centre[k] != n - 1)) continue;
        round.edge_alarms.push_back(cat(ax[k].key, ": the best value ", ax[k].values[centre[k]].text, " sits at the ",
                                        centre[k] == 0 ? "lower" : "upper",
                                        " edge of the axis; the optimum may lie beyond it (extend the grid)"));
      }
      break;
    }
    centre = next;
    ++round.round;
  }
  round.centre_text = im.point_text(cell, im.point_values(cell, round.centre));
  round.evaluated.assign(known.begin(), known.end());
  return round;
}

}  // namespace expt::experiments
