#include "experiments/sweep/scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/checkpoint.hpp"
#include "core/io/hdf5.hpp"
#include "core/io/results.hpp"
#include "core/io/sweep_index.hpp"
#include "core/io/trial_directory.hpp"
#include "experiments/trial/branching.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

bool finite_loss(const io::TrialSummary& s) { return s.status == "COMPLETED" && std::isfinite(s.final_eval_loss); }

double store_loss(const io::TrialSummary& s) {
  return finite_loss(s) ? s.final_eval_loss : std::numeric_limits<double>::infinity();
}

// The tokens a PRUNED trial trained before its point was pruned: a trunk's at its last pause
// (attempts.jsonl "paused" line), 0 for a trial that never ran.
std::int64_t paused_tokens(const fs::path& trial_dir) {
  const nlohmann::json j = io::TrialDirectory(trial_dir).last_attempt_event("paused");
  return j.is_object() && j.contains("tokens") && j["tokens"].is_number_integer() ? j["tokens"].get<std::int64_t>() : 0;
}

std::string indent(const std::string& text, int spaces) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out += std::string(static_cast<std::size_t>(spaces), ' ') + line + "\n";
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Scheduler

Scheduler::Scheduler(const Planner& planner, fs::path dir, std::string tmp_suffix)
    : planner_(planner), dir_(std::move(dir)), tmp_suffix_(std::move(tmp_suffix)) {
  if (planner_.study().strategy == Strategy::coordinate_descent) {
    // Halving decides on the first rounds: known before any round is planned on the results.
    for (const PlannedTrial& t : planner_.halving_trials()) add(t);
    refresh_halving();
    for (std::size_t c = 0; c < planner_.cells().size(); ++c) plan_cell(c);
  } else {
    for (const PlannedTrial& t : planner_.static_trials()) add(t);
    refresh_halving();
  }
  for (std::size_t c = 0; c < planner_.cells().size(); ++c) plan_confirmation(c);
}

void Scheduler::refresh_halving() {
  if (planner_.study().halving.keep <= 0) return;
  halving_ = planner_.halving(store_);
  for (TrialRecord& r : records_) {
    const bool pruned = halving_.pruned.count(r.trial.id) != 0;
    // A running trial finishes its attempt first (a trunk ends PAUSED at its rung's fork point).
    if (pruned && r.state == "pending") r.state = "PRUNED";
    if (!pruned && r.state == "PRUNED") r.state = "pending";
  }
}

ResultStore Scheduler::planning_store() const {
  ResultStore s = store_;
  for (const auto& [id, ratio] : halving_.pruned) s.emplace(id, std::numeric_limits<double>::infinity());
  return s;
}

bool Scheduler::paused_at_rung(const TrialRecord& r) const {
  const auto it = halving_.stop_at.find(r.trial.id);
  if (it == halving_.stop_at.end()) return false;
  const auto latest = io::TrialDirectory(trial_dir(r.trial.id)).latest_checkpoint();
  return latest && *latest >= it->second;
}

Scheduler::OnDisk Scheduler::inspect(const std::string& id) const {
  const io::TrialDirectory dir(trial_dir(id));
  OnDisk d;
  d.attempts = dir.count_attempts() - dir.count_pauses();
  if (const auto summary = dir.read_result()) {
    d.summary = *summary;
    d.has_summary = true;
  }
  return d;
}

bool Scheduler::is_done(const OnDisk& d) const {
  if (!d.has_summary) return false;
  const std::string& s = d.summary.status;
  return s == "COMPLETED" || s == "DIVERGED" || (s == "FAILED" && d.attempts >= planner_.study().max_attempts);
}

void Scheduler::add(const PlannedTrial& t) {
  if (index_.count(t.id) != 0) return;
  TrialRecord rec;
  rec.trial = t;
  const OnDisk d = inspect(t.id);
  rec.attempts = d.attempts;
  rec.has_summary = d.has_summary;
  rec.summary = d.summary;
  if (is_done(d)) {
    rec.state = d.summary.status;
    store_[t.id] = store_loss(d.summary);
  }
  if (!t.trunk_key.empty()) {
    ++trials_per_key_[t.trunk_key];
    const auto [it, inserted] = longest_.emplace(t.trunk_key, records_.size());
    if (!inserted && records_[it->second].trial.config.train.steps < t.config.train.steps) it->second = records_.size();
  }
  index_[t.id] = records_.size();
  records_.push_back(std::move(rec));
}

void Scheduler::plan_cell(std::size_t cell) {
  // Trials of later rounds may already be on disk (a resumed sweep): adding them can complete the
  // round, so plan again until the round's trials are all really outstanding.
  for (;;) {
    CdRound round = planner_.cd_round(cell, planning_store());
    round_history_[{cell, round.round}] = round;
    const std::size_t known = store_.size();
    for (const PlannedTrial& t : round.todo) add(t);
    if (store_.size() == known) {
      record_round(round);
      rounds_[cell] = std::move(round);
      return;
    }
  }
}

void Scheduler::plan_confirmation(std::size_t cell) {
  if (planner_.study().confirm.seeds == 0) return;
  // A pure function of the search seeds' results: a resumed sweep or another worker adds the same
  // trials, which `add` finds on disk (done or not) instead of planning them again.
  Confirmation c = planner_.confirmation(cell, planning_store());
  for (const PlannedTrial& t : c.trials) add(t);
  confirmations_[cell] = std::move(c);
}

void Scheduler::record_round(const CdRound& round) const {
  // Whoever plans a round first records it; it is a pure function of the finished trials, so any
  // later planner (another worker, a resumed sweep) must find the same centre.
  // A cell of a study with scales is named optimizer/model/ratio (e.g. adamw/s/x1): its records
  // sit in nested folders, coordinator/rounds/adamw/s/x1.round-0.json.
  const std::string name = planner_.cells()[round.cell].name;
  const fs::path path = dir_ / "coordinator" / "rounds" / fmt::format("{}.round-{}.json", name, round.round);
  fs::create_directories(path.parent_path());
  const nlohmann::json j = {{"cell", name}, {"round", round.round}, {"centre", round.centre_text}};
  if (io::write_file_once(path, j.dump() + "\n", tmp_suffix_)) return;
  std::ifstream in(path);
  nlohmann::json recorded;
  try {
    recorded = nlohmann::json::parse(in);
  } catch (const std::exception&) {
    return;  // unreadable (a damaged disk): nothing to compare with
  }
  if (recorded != j)
    std::fprintf(stderr, "expt: warning: coordinate-descent round %d of %s is centred at %s, but %s recorded %s\n",
                 round.round, name.c_str(), round.centre_text.c_str(), path.string().c_str(), recorded.dump().c_str());
}

const TrialRecord* Scheduler::trunk_of(const TrialRecord& r) const {
  const auto it = r.trial.trunk_key.empty() ? longest_.end() : longest_.find(r.trial.trunk_key);
  if (it == longest_.end()) return nullptr;
  const TrialRecord& longest = records_[it->second];
  return longest.trial.config.train.steps > r.trial.config.train.steps ? &longest : nullptr;
}

bool Scheduler::waits_for_trunk(const TrialRecord& r) const {
  const TrialRecord* trunk = trunk_of(r);
  if (trunk == nullptr) return false;
  // With halving a trunk is often pending (promoted, not handed out yet): its branch waits for the
  // fork point rather than train the trunk's steps from scratch. A trunk paused at its rung makes
  // no new fork point before the rung is decided: a branch it has none for trains from scratch
  // (the same result) rather than wait for ever.
  const bool halving = planner_.study().halving.keep > 0;
  const bool unfinished =
      trunk->state == "running" || (halving && trunk->state == "pending" && !paused_at_rung(*trunk));
  if (!unfinished) return false;
  // A branch that has started (its own checkpoint) resumes from it; otherwise it waits for the
  // fork point rather than train the shared steps a second time.
  if (io::TrialDirectory(trial_dir(r.trial.id)).latest_checkpoint()) return false;
  return !has_fork_point(trial_dir(trunk->trial.id), r.trial.branch_step);
}

std::optional<PlannedTrial> Scheduler::next(int group) {
  TrialRecord* best = nullptr;
  for (TrialRecord& r : records_)
    if (r.state == "pending" && (best == nullptr || r.trial.cost > best->trial.cost) &&
        halving_.held.count(r.trial.id) == 0 && !paused_at_rung(r) && !waits_for_trunk(r))
      best = &r;
  if (best == nullptr) return std::nullopt;
  best->state = "running";
  best->group = group;
  best->started_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  best->live_step = -1;
  PlannedTrial t = best->trial;
  if (const TrialRecord* trunk = trunk_of(*best)) t.trunk_id = trunk->trial.id;
  if (const auto stop = halving_.stop_at.find(t.id); stop != halving_.stop_at.end()) t.stop_at = stop->second;
  return t;
}

void Scheduler::finished(const std::string& id, const io::TrialSummary& summary, bool interrupted, bool retryable) {
  const auto it = index_.find(id);
  if (it == index_.end()) throw std::logic_error("Scheduler::finished: unknown trial " + id);
  TrialRecord& rec = records_[it->second];
  rec.summary = summary;
  rec.has_summary = true;
  rec.group = -1;
  const io::TrialDirectory on_disk(trial_dir(id));
  // A trunk that paused at a halving rung (status PAUSED) did not fail: its start is not an attempt.
  const int paused = summary.status == "PAUSED" ? 0 : 1;
  rec.attempts = std::max(rec.attempts + paused, on_disk.count_attempts() - on_disk.count_pauses());
  OnDisk d{true, summary, rec.attempts};
  if (interrupted || (retryable && !is_done(d))) {
    rec.state = "pending";
    if (summary.status == "PAUSED") rec.has_summary = false;
  } else {
    rec.state = summary.status;
    store_[id] = store_loss(summary);
  }
  const std::size_t cell = rec.trial.cell;  // planning adds records: `rec` may not outlive it
  refresh_halving();
  // A rung decision can finish the round of a cell at a larger ratio (its other points pruned).
  for (std::size_t c = 0; c < planner_.cells().size(); ++c) {
    if (c != cell && planner_.study().halving.keep <= 0) continue;
    bool open = false;
    for (const TrialRecord& r : records_)
      open = open || (r.trial.cell == c && (r.state == "pending" || r.state == "running"));
    if (open) continue;
    if (planner_.study().strategy == Strategy::coordinate_descent) plan_cell(c);
    plan_confirmation(c);
  }
}

void Scheduler::running_elsewhere(const std::string& id) {
  const auto it = index_.find(id);
  if (it == index_.end() || records_[it->second].state != "pending") return;
  records_[it->second].state = "running";
  records_[it->second].group = -1;
}

void Scheduler::progress(const std::string& id, std::int64_t step, double loss, double tokens_per_s, double step_s) {
  const auto it = index_.find(id);
  if (it == index_.end()) return;
  TrialRecord& rec = records_[it->second];
  if (rec.state != "running") return;
  rec.live_step = step;
  rec.live_loss = loss;
  rec.live_tokens_per_s = tokens_per_s;
  rec.live_step_s = step_s;
}

bool Scheduler::all_done() const {
  for (const TrialRecord& r : records_)
    if (r.state == "pending" || r.state == "running") return false;
  return true;
}

std::size_t Scheduler::running() const {
  return static_cast<std::size_t>(
      std::count_if(records_.begin(), records_.end(), [](const TrialRecord& r) { return r.state == "running"; }));
}

std::vector<DroppedPoint> Scheduler::dropped() const {
  std::vector<DroppedPoint> out = planner_.dropped();
  for (const auto& [cell, round] : rounds_) out.insert(out.end(), round.dropped.begin(), round.dropped.end());
  return out;
}

std::string Scheduler::status_json(double elapsed_s) const {
  using nlohmann::json;
  json counts = json::object();
  // PRUNED (search.halving) appears once some trial is, as `expt serve` counts states it sees.
  for (const char* s : {"pending", "running", "COMPLETED", "DIVERGED", "FAILED"}) counts[s] = 0;
  json trials = json::array();
  for (const TrialRecord& r : records_) {
    counts[r.state] = counts.value(r.state, 0) + 1;
    json row = {{"id", r.trial.id},
                {"cell", r.trial.cell_name},
                {"optimizer", r.trial.optimizer},
                {"seed", r.trial.seed},
                {"point", r.trial.point},
                {"confirmation", r.trial.confirmation},
                {"state", r.state},
                {"attempts", r.attempts},
                {"steps", r.trial.config.train.steps},
                {"dir", trial_dir(r.trial.id).string()}};
    if (const std::string role = this->role(r); !role.empty()) row["role"] = role;
    json step = nullptr, loss = nullptr, tps = nullptr;
    if (r.state == "running" && r.live_step >= 0) {
      // Live progress: the group leader's last report (every few seconds).
      step = r.live_step;
      if (std::isfinite(r.live_loss)) loss = r.live_loss;
      tps = r.live_tokens_per_s;
      if (r.live_step_s > 0) row["step_s"] = r.live_step_s;
      row["group"] = r.group;
      row["running_s"] = elapsed_s - r.started_s;
    } else if (r.state == "running" || r.state == "PRUNED" ||
               (r.state == "pending" && halving_.stop_at.count(r.trial.id) != 0)) {
      // No report yet (or never to finish): the last committed checkpoint's step.
      if (const auto s = io::TrialDirectory(trial_dir(r.trial.id)).latest_checkpoint()) step = *s;
      if (r.state == "running") {
        row["group"] = r.group;
        row["running_s"] = elapsed_s - r.started_s;
      }
    } else if (r.has_summary) {
      step = r.summary.steps_done;
      if (std::isfinite(r.summary.final_eval_loss)) loss = r.summary.final_eval_loss;
      if (r.summary.wall_s > 0) tps = static_cast<double>(r.summary.tokens_seen) / r.summary.wall_s;
      row["wall_s"] = r.summary.wall_s;
      if (!r.summary.message.empty()) row["message"] = r.summary.message;
    }
    if (const auto q = io::TrialDirectory(trial_dir(r.trial.id)).quarantined_files(); !q.empty())
      row["quarantined"] = q;
    row["step"] = step;
    row["loss"] = loss;
    row["tokens_per_s"] = tps;
    trials.push_back(std::move(row));
  }
  json cd = json::array();
  for (const auto& [cell, round] : rounds_) {
    cd.push_back({{"cell", planner_.cells()[cell].name},
                  {"round", round.round},
                  {"centre", round.centre_text},
                  {"converged", round.converged},
                  {"best_loss", std::isfinite(round.best_loss) ? json(round.best_loss) : json(nullptr)},
                  {"todo", round.todo.size()},
                  {"near_best", round.near_best},
                  {"edge_alarms", round.edge_alarms}});
  }
  // search.confirm per cell: waiting for the search, or the points confirmed and their trials' progress.
  json confirm = json::array();
  for (const auto& [cell, c] : confirmations_) {
    int done = 0;
    for (const PlannedTrial& t : c.trials) done += store_.count(t.id) != 0 ? 1 : 0;
    confirm.push_back({{"cell", planner_.cells()[cell].name},
                       {"ready", c.ready},
                       {"points", c.points},
                       {"trials", c.trials.size()},
                       {"done", done}});
  }
  json dropped = json::array();
  for (const DroppedPoint& d : this->dropped())
    dropped.push_back({{"cell", d.cell}, {"point", d.point}, {"reason", d.reason}});
  // search.halving: per group the decided rungs (ranked points, how many kept) and the rung waited on.
  json halving = json::array();
  for (const HalvingRung& g : halving_.rungs) {
    json ranked = json::array();
    for (const auto& [point, loss] : g.ranked)
      ranked.push_back({{"point", point}, {"loss", std::isfinite(loss) ? json(loss) : json(nullptr)}});
    halving.push_back({{"group", g.group},
                       {"ratio", g.ratio},
                       {"decided", g.decided},
                       {"trials", g.trials},
                       {"done", g.trials_done},
                       {"ranked", ranked},
                       {"kept", g.kept}});
  }
  json status = {{"study", planner_.study().name},
                 {"strategy", strategy_name(planner_.study().strategy)},
                 {"elapsed_s", elapsed_s},
                 {"counts", counts},
                 {"trials", trials},
                 {"coordinate_descent", cd},
                 {"confirmation", confirm},
                 {"dropped", dropped}};
  if (planner_.study().halving.keep > 0) status["halving"] = halving;
  return status.dump(1) + "\n";
}

void Scheduler::write_status(double elapsed_s) const {
  io::write_file_atomic(dir_ / "status.json", status_json(elapsed_s), tmp_suffix_);
}

void Scheduler::write_index() const {
  namespace h5 = io::h5;
  const fs::path final_path = dir_ / "sweep.h5";
  const fs::path tmp = dir_ / ("sweep.h5" + tmp_suffix_);
  {
    h5::File file = h5::create_file(tmp, false);
    h5::write_attribute(file, "schema_version", std::int64_t{1});
    h5::write_attribute(file, "sweep_id", planner_.study().name);
    h5::write_attribute(file, "strategy", std::string(strategy_name(planner_.study().strategy)));
    h5::write_attribute(file, "config_schema", config::kConfigSchemaVersion);  // of the trial ids below
    h5::write_attribute(file, "git_sha", io::build_git_sha());
    h5::write_string_dataset(file, "config", resolved_study_yaml(planner_));

    // /trials, /point, /axes: one row per trial (core/io/sweep_index.hpp).
    std::vector<io::SweepIndexRow> rows;
    rows.reserve(records_.size());
    for (const TrialRecord& r : records_) {
      rows.push_back(
          {.trial_id = r.trial.id,
           .optimizer = r.trial.optimizer,
           .seed = static_cast<std::int64_t>(r.trial.seed),
           .cell = r.trial.cell_name,
           .model_tag = r.trial.model_tag,
           .data_ratio = r.trial.data_ratio,
           .point = r.trial.point,
           .axes = r.trial.axes,
           .status = r.state,
           .final_eval_loss = r.has_summary ? r.summary.final_eval_loss : std::numeric_limits<double>::infinity(),
           .steps = static_cast<std::int64_t>(r.trial.config.train.steps),
           .tokens = r.has_summary         ? static_cast<std::int64_t>(r.summary.tokens_seen)
                     : r.state == "PRUNED" ? paused_tokens(trial_dir(r.trial.id))
                                           : 0,
           .n_attempts = static_cast<std::int32_t>(r.attempts)});
    }
    io::write_sweep_index(file, rows);

    // /trial_files/<id>: external links, resolved relative to sweep.h5's directory.
    h5::Group links = h5::create_group(file, "trial_files");
    {
      h5::ErrorGuard guard;
      for (const TrialRecord& r : records_) {
        if (!fs::exists(trial_dir(r.trial.id) / "result.h5")) continue;
        const std::string target = "trials/" + r.trial.id + "/result.h5";
        h5::check_status(
            H5Lcreate_external(target.c_str(), "/", links.id(), r.trial.id.c_str(), H5P_DEFAULT, H5P_DEFAULT),
            "create external link /trial_files/" + r.trial.id + " in " + tmp.string());
      }
    }
    links.close();
    file.close();
  }
  io::fsync_file(tmp);
  io::rename_atomic(tmp, final_path);
  write_state();
}

void Scheduler::write_state() const {
  namespace h5 = io::h5;
  const fs::path state_dir = dir_ / "coordinator";
  fs::create_directories(state_dir);
  const fs::path final_path = state_dir / "state.h5";
  const fs::path tmp = state_dir / ("state.h5" + tmp_suffix_);
  {
    h5::File file = h5::create_file(tmp, false);
    h5::write_attribute(file, "schema_version", std::int64_t{1});
    h5::write_attribute(file, "sweep_id", planner_.study().name);
    h5::write_attribute(file, "strategy", std::string(strategy_name(planner_.study().strategy)));
    h5::write_attribute(file, "tolerance", planner_.study().tolerance);

    // /cd_rounds: one packed row per (cell, round), in cell then round order.
    const h5::Datatype s64 = h5::string_type(64), s256 = h5::string_type(256), s1024 = h5::string_type(1024);
    const h5::CompoundField fields[] = {
        {"cell", s64.id()},         {"round", H5T_NATIVE_INT32},
        {"centre", s256.id()},      {"best_loss", H5T_NATIVE_DOUBLE},
        {"todo", H5T_NATIVE_INT64}, {"converged", H5T_NATIVE_UINT8},
        {"near_best", s1024.id()},  {"edge_alarms", s1024.id()},
    };
    std::vector<std::size_t> off;
    const h5::Datatype row = h5::make_compound(fields, &off);
    const std::size_t row_size = H5Tget_size(row.id());
    std::vector<unsigned char> buf(row_size * round_history_.size(), 0);
    std::size_t i = 0;
    const auto join = [](const std::vector<std::string>& items) {
      std::string out;
      for (const std::string& x : items) out += (out.empty() ? "" : "; ") + x;
      return out;
    };
    for (const auto& [key, round] : round_history_) {
      unsigned char* p = buf.data() + i++ * row_size;
      const auto put_str = [&](std::size_t field, const std::string& v, std::size_t size) {
        std::memcpy(p + off[field], v.data(), std::min(size, v.size()));
      };
      const auto put = [&](std::size_t field, const auto& v) { std::memcpy(p + off[field], &v, sizeof(v)); };
      put_str(0, planner_.cells()[key.first].name, 64);
      put(1, static_cast<std::int32_t>(round.round));
      put_str(2, round.centre_text, 256);
      put(3, round.best_loss);
      put(4, static_cast<std::int64_t>(round.todo.size()));
      put(5, static_cast<std::uint8_t>(round.converged ? 1 : 0));
      put_str(6, join(round.near_best), 1024);
      put_str(7, join(round.edge_alarms), 1024);
    }
    h5::Dataset rounds = h5::create_row_dataset(file, "cd_rounds", row.id(), {}, 64);
    if (!round_history_.empty()) h5::append_rows(rounds, row.id(), buf.data(), round_history_.size());
    rounds.close();
    file.close();
  }
  io::fsync_file(tmp);
  io::rename_atomic(tmp, final_path);
}

std::string Scheduler::role(const TrialRecord& r) const {
  if (const auto p = halving_.pruned.find(r.trial.id); p != halving_.pruned.end() && r.state == "PRUNED")
    return fmt::format("pruned at rung x{}", p->second);
  if (r.trial.trunk_key.empty()) return "";
  std::string role;
  if (const TrialRecord* trunk = trunk_of(r)) {
    role = fmt::format("branch of {} from step {}", trunk->trial.id, r.trial.branch_step);
  } else {
    // The longest of several trials sharing a trunk key (they differ in steps only) is their trunk.
    const auto n = trials_per_key_.find(r.trial.trunk_key);
    if (n != trials_per_key_.end() && n->second > 1) role = "trunk";
  }
  if (r.state != "pending") return role;
  if (const auto stop = halving_.stop_at.find(r.trial.id); stop != halving_.stop_at.end())
    role += fmt::format("{}{} at step {} until its rung is decided", role.empty() ? "" : ", ",
                        paused_at_rung(r) ? "paused" : "stops", stop->second);
  else if (halving_.held.count(r.trial.id) != 0)
    role += fmt::format("{}waits for a smaller ratio's rung", role.empty() ? "" : ", ");
  return role;
}

std::string Scheduler::summary_text() const {
  std::map<std::string, int> counts;
  for (const TrialRecord& r : records_) ++counts[r.state];
  std::string s = fmt::format("sweep {}: {} trial(s):", planner_.study().name, records_.size());
  for (const char* state : {"COMPLETED", "DIVERGED", "FAILED", "PRUNED", "pending", "running"})
    if (counts[state] > 0) s += fmt::format(" {} {}", counts[state], state);
  s += "\n";
  bool header = false;
  for (const TrialRecord& r : records_) {
    if (r.state != "FAILED") continue;
    if (!header) s += "failed trials:\n";
    header = true;
    s += fmt::format("  {} ({} seed {} {}) after {} attempt(s): {}\n    log: {}\n", r.trial.id, r.trial.cell_name,
                     r.trial.seed, r.trial.point, r.attempts, r.summary.message,
                     (trial_dir(r.trial.id) / "log.txt").string());
  }
  for (const TrialRecord& r : records_)
    for (const std::string& q : io::TrialDirectory(trial_dir(r.trial.id)).quarantined_files())
      s += fmt::format("quarantined (damaged, kept aside): {}\n", (trial_dir(r.trial.id) / "quarantine" / q).string());
  const auto drops = dropped();
  if (!drops.empty()) {
    s += fmt::format("{} infeasible point(s) dropped:\n", drops.size());
    for (const DroppedPoint& d : drops) s += fmt::format("  {} {}: {}\n", d.cell, d.point, d.reason);
  }
  for (const auto& [cell, round] : rounds_) {
    const std::string& name = planner_.cells()[cell].name;
    if (!round.converged) {
      s += fmt::format("{}: round {} unfinished around {}\n", name, round.round, round.centre_text);
      continue;
    }
    s += fmt::format("{}: converged after {} round(s) at {} (loss {:.4f}); {} point(s) within tolerance\n", name,
                     round.round + 1, round.centre_text, round.best_loss, round.near_best.size());
    for (const std::string& a : round.edge_alarms) s += fmt::format("  ALARM {}\n", a);
  }
  for (const HalvingRung& g : halving_.rungs) {
    if (!g.decided) {
      s += fmt::format("halving {} rung x{}: waits for {} of {} trial(s)\n", g.group, g.ratio, g.trials - g.trials_done,
                       g.trials);
      continue;
    }
    std::string kept, pruned;
    for (std::size_t i = 0; i < g.ranked.size(); ++i)
      (i < g.kept ? kept : pruned) += fmt::format("{}[{}] {:.4f}", (i < g.kept ? kept : pruned).empty() ? "" : ", ",
                                                  g.ranked[i].first, g.ranked[i].second);
    s += fmt::format("halving {} rung x{}: kept {} of {}: {}; pruned: {}\n", g.group, g.ratio, g.kept, g.ranked.size(),
                     kept.empty() ? "none" : kept, pruned.empty() ? "none" : pruned);
  }
  for (const auto& [cell, c] : confirmations_) {
    const std::string& name = planner_.cells()[cell].name;
    if (!c.ready) {
      s += fmt::format("{}: confirmation waits for the search\n", name);
      continue;
    }
    std::string points;
    for (const std::string& p : c.points) points += fmt::format("{}[{}]", points.empty() ? "" : ", ", p);
    s += fmt::format("{}: confirmed {} point(s) with {} seed(s) in all: {}\n", name, c.points.size(),
                     planner_.study().confirm.seeds, points.empty() ? "none (no finite loss)" : points);
  }
  return s;
}

namespace {

// The resolved study; for the identity (`run_settings` false) without the seeds and the `sweep:`
// section: how often and how the points are run, not which points there are.
std::string resolved_yaml(const Planner& planner, bool run_settings) {
  const Study& st = planner.study();
  std::string y = "study: " + st.name + "\nsearch:\n";
  y += fmt::format("  strategy: {}\n", strategy_name(st.strategy));
  if (run_settings) {
    y += "  seeds: [";
    for (std::size_t i = 0; i < st.seeds.size(); ++i) y += fmt::format("{}{}", i ? ", " : "", st.seeds[i]);
    y += "]\n";
    if (st.confirm.seeds > 0) {  // how often points run, like the seeds: not part of the identity
      y += fmt::format("  confirm: {{seeds: {}, band: {}", st.confirm.seeds, config::format_double(st.confirm.band));
      if (st.confirm.max_points > 0) y += fmt::format(", max_points: {}", st.confirm.max_points);
      y += "}\n";
    }
    if (st.halving.keep > 0)  // which trials run, not which points exist: not part of the identity
      y += fmt::format("  halving: {{keep: {}, min_points: {}}}\n", config::format_double(st.halving.keep),
                       st.halving.min_points);
  }
  if (st.strategy == Strategy::halton) y += fmt::format("  points: {}\n", st.halton_points);
  if (st.strategy == Strategy::coordinate_descent)
    y += fmt::format("  tolerance: {}\n  recentre_min_saving: {}\n", config::format_double(st.tolerance),
                     st.recentre_min_saving);
  if (!st.models.empty()) {
    y += fmt::format("scales:\n  tokens_per_param: {}\n  data_ratios: [", config::format_double(st.tokens_per_param));
    for (std::size_t i = 0; i < st.data_ratios.size(); ++i)
      y += (i ? ", " : "") + config::format_double(st.data_ratios[i]);
    y += "]\n";
    // How the trials run, not which: toggling it keeps the study (and every trial id).
    if (run_settings) y += fmt::format("  branching: {}\n", st.branching ? "wsd" : "none");
  }
  if (run_settings)
    y += fmt::format("sweep:\n  ranks_per_trial: {}\n  max_attempts: {}\n  collective_timeout_s: {}\n",
                     st.ranks_per_trial, st.max_attempts, config::format_double(st.collective_timeout_s));
  y += "cells:\n";
  for (std::size_t c = 0; c < planner.cells().size(); ++c) {
    const Cell& cell = planner.cells()[c];
    y += fmt::format("  {}:\n", config::format_string(cell.name));
    if (!cell.compare.empty()) {  // the compared values, as written (the analysis labels cells by them)
      y += "    compare:\n";
      for (std::size_t k = 0; k < cell.compare.size(); ++k) {
        const config::YamlNode& v = st.compare[k].values[cell.compare[k]];
        y += fmt::format("      {}: {}\n", st.compare[k].key, v.plain ? v.text : config::format_string(v.text));
      }
    }
    y += "    axes:\n";
    for (const Axis& a : st.optimizers[cell.optimizer].axes) {
      if (a.continuous) {
        y += fmt::format("      {}: {{min: {}, max: {}, log: {}}}\n", a.key, config::format_double(a.min),
                         config::format_double(a.max), a.log ? "true" : "false");
        continue;
      }
      y += fmt::format("      {}: [", a.key);
      for (std::size_t i = 0; i < a.values.size(); ++i)
        y += (i ? ", " : "") + (a.values[i].plain ? a.values[i].text : config::format_string(a.values[i].text));
      y += "]\n";
    }
    config::TrialConfig base = planner.cell_base(c);
    base.out = "";
    y += "    base:\n" + indent(config::to_canonical_yaml(base), 6);
  }
  return y;
}

}  // namespace

std::string resolved_study_yaml(const Planner& planner) { return resolved_yaml(planner, true); }

std::string study_identity_yaml(const Planner& planner) { return resolved_yaml(planner, false); }

}  // namespace expt::experiments
