#include "experiments/serve/served_directory.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "analysis/analysis.hpp"
#include "analysis/report.hpp"
#include "analysis/sweep_reader.hpp"
#include "core/config/loader.hpp"
#include "core/io/hdf5.hpp"
#include "core/io/heartbeat.hpp"
#include "core/io/metrics.hpp"
#include "core/io/trial_directory.hpp"
#include "core/io/trial_identity.hpp"
#include "core/io/trial_lease.hpp"
#include "experiments/sweep/sweep_status.hpp"
#include "optimizers/schedule.hpp"

namespace expt::serve {

namespace fs = std::filesystem;
using nlohmann::json;

FileStamp stamp_of(const fs::path& file) {
  std::error_code ec;
  FileStamp s;
  const auto status = fs::status(file, ec);
  if (ec || !fs::is_regular_file(status)) return s;
  s.mtime = fs::last_write_time(file, ec);
  if (ec) return FileStamp{};
  s.size = fs::file_size(file, ec);
  if (ec) return FileStamp{};
  s.exists = true;
  return s;
}

namespace {

// Liveness from the heartbeats (core/io/heartbeat.hpp), as `expt status` judges it: which trials a
// live process trains now, and a key that changes only when the picture does (not with the age of
// a beat), so cached answers stay valid while nothing changes.
struct LiveTrials {
  io::SweepLiveness sweep;
  std::set<std::string> trained;  // trials a process with a fresh heartbeat trains
  std::string key;
};

LiveTrials live_trials(const fs::path& dir) {
  LiveTrials live;
  const double now = io::lease_clock_now();
  live.sweep = io::sweep_liveness(dir, now);
  if (live.sweep.any)
    for (const io::HeartbeatRecord& b : io::read_heartbeats(dir))
      if (!b.trial.empty() && io::liveness(b, now) == io::Liveness::running) live.trained.insert(b.trial);
  live.key = !live.sweep.any      ? std::string("unknown")
             : live.sweep.running ? "running " + std::to_string(live.sweep.alive)
                                  : live.sweep.last_state;
  for (const std::string& t : live.trained) live.key += " " + t;
  return live;
}

// "running", "interrupted", "stopped", "finished", or "unknown" (a directory of an expt without heartbeats).
std::string liveness_word(const io::SweepLiveness& l) {
  if (!l.any) return "unknown";
  if (l.running) return "running";
  return l.last_state == "running" ? "interrupted" : l.last_state;
}

// Losses are +inf for diverged trials; JSON has no infinity, and the page shows null as "-".
json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// Whether a trial in state `s` is done: every state but the live ones (`pending` and `running` as
// status.json says them, `interrupted` as the heartbeats judge it, `unfinished` of a trial
// directory without result.h5). COMPLETED, DIVERGED, FAILED, PRUNED of successive halving, or a
// state a later expt adds: the dashboard needs no list of outcomes (docs/dashboard.md).
bool finished_state(const std::string& s) {
  return s != "pending" && s != "running" && s != "interrupted" && s != "unfinished" && !s.empty();
}

// Trial ids are hex hashes (core/io/trial_identity.hpp); anything else never names a folder.
bool plausible_trial_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

std::string read_text(const fs::path& file, std::size_t limit) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::string text(limit, '\0');
  in.read(text.data(), static_cast<std::streamsize>(limit));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

// The last `max_lines` lines of a text file, reading at most its last 64 KiB.
std::string tail_lines(const fs::path& file, std::size_t max_lines) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (!in) return {};
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - (64 << 10));
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = text.size(), lines = 0;
  while (pos > 0 && lines <= max_lines) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
    ++lines;
  }
  return pos == 0 ? text : text.substr(pos + 1);
}

// attempts.jsonl: one JSON object per complete line; a line a writer has not finished is left out.
json read_attempts(const fs::path& file, json& notes) {
  json out = json::array();
  std::ifstream in(file);
  std::string line;
  int bad = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      out.push_back(json::parse(line));
    } catch (const std::exception&) {
      ++bad;
    }
  }
  if (bad > 0) notes.push_back(file.string() + ": " + std::to_string(bad) + " line(s) that are not JSON left out");
  return out;
}

// Indices of at most `max_points` rows out of n, evenly spread, first and last kept.
std::vector<std::size_t> thinned(std::size_t n, std::size_t max_points) {
  std::vector<std::size_t> idx;
  if (n <= max_points || max_points < 2) {
    idx.resize(n);
    for (std::size_t i = 0; i < n; ++i) idx[i] = i;
    return idx;
  }
  idx.reserve(max_points);
  for (std::size_t k = 0; k < max_points; ++k) idx.push_back(k * (n - 1) / (max_points - 1));
  return idx;
}

json train_columns(const std::vector<io::TrainRow>& rows, std::size_t max_points) {
  json step = json::array(), tokens = json::array(), wall = json::array(), loss = json::array(), lr = json::array(),
       grad = json::array(), update = json::array(), param = json::array();
  for (std::size_t i : thinned(rows.size(), max_points)) {
    const io::TrainRow& r = rows[i];
    step.push_back(r.step);
    tokens.push_back(r.tokens);
    wall.push_back(r.wall_s);
    loss.push_back(finite_or_null(r.loss));
    lr.push_back(finite_or_null(r.lr));
    grad.push_back(finite_or_null(r.grad_norm));
    update.push_back(finite_or_null(r.update_norm));
    param.push_back(finite_or_null(r.param_norm));
  }
  return {{"step", step}, {"tokens", tokens},  {"wall_s", wall},        {"loss", loss},
          {"lr", lr},     {"grad_norm", grad}, {"update_norm", update}, {"param_norm", param}};
}

json eval_columns(const std::vector<io::EvalRow>& rows, const io::EvalSchema& schema, std::size_t max_points) {
  json out = {{"step", json::array()}, {"tokens", json::array()}, {"wall_s", json::array()}};
  for (const std::string& f : schema.fields) out[f] = json::array();
  for (std::size_t i : thinned(rows.size(), max_points)) {
    const io::EvalRow& r = rows[i];
    out["step"].push_back(r.step);
    out["tokens"].push_back(r.tokens);
    out["wall_s"].push_back(r.wall_s);
    for (std::size_t c = 0; c < schema.fields.size() && c < r.values.size(); ++c)
      out[schema.fields[c]].push_back(finite_or_null(r.values[c]));
  }
  return out;
}

json events_json(const std::vector<io::EventRow>& rows) {
  json out = json::array();
  for (const io::EventRow& e : rows)
    out.push_back({{"step", e.step}, {"wall_s", e.wall_s}, {"kind", e.kind}, {"detail", e.detail}});
  return out;
}

std::string stamp_text(const FileStamp& s) {
  return s.exists ? std::to_string(s.mtime.time_since_epoch().count()) + ":" + std::to_string(s.size) : "-";
}

// Whether `path` lies under `base` (both canonical), component by component.
bool is_under(const fs::path& path, const fs::path& base) {
  auto p = path.begin();
  for (auto b = base.begin(); b != base.end(); ++b, ++p)
    if (p == path.end() || *p != *b) return false;
  return true;
}

// status.json's confirmation of one cell (search.confirm), with the line `expt status` prints for
// it after "confirm <cell>: ".
json confirmation_entry(const json& c) {
  json out = c;
  if (!c.value("ready", false)) {
    out["text"] = "waits for the search";
    return out;
  }
  std::string points;
  std::size_t n = 0;
  if (c.contains("points") && c["points"].is_array())
    for (const json& p : c["points"])
      if (p.is_string()) {
        points += (points.empty() ? "[" : ", [") + p.get<std::string>() + "]";
        ++n;
      }
  const auto count = [&c](const char* key) {
    return c.contains(key) && c[key].is_number_integer() ? std::to_string(c[key].get<std::int64_t>()) : "?";
  };
  out["text"] = count("done") + "/" + count("trials") + " trial(s) done, " + std::to_string(n) +
                " point(s): " + (points.empty() ? "none" : points);
  return out;
}

// What a branch's attempts.jsonl says of its fork (experiments/trial/trainer.cpp writes "fork" or
// "fork_skipped" before the attempt's "start"): its last fork or fork_skipped line (null when there
// is none), and whether an attempt has started. Lines that are not JSON (a line being written) are
// skipped.
struct ForkLog {
  json event;
  bool started = false;
};
ForkLog read_fork_log(const fs::path& attempts) {
  std::ifstream in(attempts);
  ForkLog log;
  for (std::string line; std::getline(in, line);) {
    if (line.find("fork") == std::string::npos && line.find("start") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("event") || !j["event"].is_string()) continue;
    if (j["event"] == "start") log.started = true;
    if (j["event"] == "fork" || j["event"] == "fork_skipped") log.event = std::move(j);
  }
  return log;
}

// A branch's role: the trunk and fork step of the plan (`trunk`, `planned_step`: unknown while no
// config says the schedule), replaced by what its attempts.jsonl says once it has started. Its text
// is `expt plan`'s, "branch of <trunk> from step <c>", with ", trained from scratch: <why>" after a
// fork_skipped, or when an attempt started without a fork line (it was handed out before its trunk
// was planned, e.g. a confirmation seed of a smaller ratio whose larger one was confirmed later).
json branch_role(const std::string& trunk, std::optional<std::int64_t> planned_step, const ForkLog& log) {
  const json& event = log.event;
  json role = {{"role", "branch"}, {"trunk", trunk}, {"forked", false}};
  if (planned_step) role["from_step"] = *planned_step;
  if (!event.is_object() && log.started) role["fork_skipped"] = "it started without a fork (attempts.jsonl)";
  if (event.is_object()) {
    if (event.contains("trunk") && event["trunk"].is_string()) role["trunk"] = event["trunk"];
    if (event["event"] == "fork") {
      role["forked"] = true;
      if (event.contains("from_step") && event["from_step"].is_number_integer()) role["from_step"] = event["from_step"];
    } else {
      role["fork_skipped"] = event.value("reason", std::string());
    }
  }
  std::string text = "branch of " + role["trunk"].get<std::string>();
  if (role.contains("from_step")) text += " from step " + std::to_string(role["from_step"].get<std::int64_t>());
  if (role.contains("fork_skipped")) text += ", trained from scratch: " + role["fork_skipped"].get<std::string>();
  role["text"] = text;
  return role;
}

}  // namespace

ServedDirectory::ServedDirectory(const fs::path& dir, std::size_t metrics_cache_bytes)
    : metrics_cache_limit_(metrics_cache_bytes) {
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (ec || !fs::exists(status)) throw std::invalid_argument(dir.string() + ": no such directory");
  if (!fs::is_directory(status)) throw std::invalid_argument(dir.string() + ": not a directory");
  if (::access(dir.c_str(), R_OK | X_OK) != 0) throw std::invalid_argument(dir.string() + ": not readable");
  root_ = fs::canonical(dir);
  if (fs::exists(root_ / "sweep.h5") || fs::exists(root_ / "status.json")) {
    kind_ = Kind::sweep;
  } else if (fs::exists(root_ / "trial.yaml")) {
    kind_ = Kind::trial;
    std::optional<io::DirectoryTrial> t;
    try {
      t = io::read_directory_trial(root_);
    } catch (const std::exception& e) {
      throw std::invalid_argument(dir.string() + ": trial.yaml does not read: " + e.what());
    }
    single_trial_id_ = t && !t->id.empty() ? t->id : (t ? t->legacy_id : std::string());
    if (single_trial_id_.empty())
      throw std::invalid_argument(dir.string() + ": trial.yaml names no trial of this expt (another config schema)");
  } else {
    throw std::invalid_argument(dir.string() +
                                " is neither a sweep directory (no sweep.h5 or status.json) nor a trial directory "
                                "(no trial.yaml)");
  }
}

fs::path ServedDirectory::trial_dir(const std::string& id) const {
  return kind_ == Kind::trial ? root_ : root_ / "trials" / id;
}

const ServedDirectory::IndexEntry& ServedDirectory::index() {
  const fs::path file = root_ / "sweep.h5";
  const FileStamp stamp = stamp_of(file);
  if (stamp == index_.stamp) return index_;  // a missing file's stamp equals the empty start
  IndexEntry entry;
  entry.stamp = stamp;
  if (stamp.exists) {
    try {
      const io::h5::File h5file = io::h5::open_file(file);
      entry.rows = io::read_sweep_index(h5file, file.string());
      const YAML::Node doc = YAML::Load(io::h5::read_string_dataset(h5file, "config"));
      if (doc["sweep"] && doc["sweep"]["ranks_per_trial"])
        entry.ranks_per_trial = doc["sweep"]["ranks_per_trial"].as<int>();
      entry.branching =
          doc["scales"] && doc["scales"]["branching"] && doc["scales"]["branching"].as<std::string>() == "wsd";
      if (entry.branching && doc["cells"] && doc["cells"].IsMap())
        for (const auto& cell : doc["cells"]) {
          if (!cell.second["base"]) continue;
          // The resolved study leaves `out` empty, which a trial config refuses; it has no bearing here.
          YAML::Node base = YAML::Clone(cell.second["base"]);
          base.remove("out");
          YAML::Emitter text;
          text << base;
          const std::string name = cell.first.as<std::string>();
          try {
            entry.cell_schedules[name] = config::parse_trial_config(text.c_str(), "sweep.h5 cells." + name).schedule;
          } catch (const std::exception&) {
            // A cell base this binary does not read: its branches' fork steps come from trial.yaml.
          }
        }
    } catch (const std::exception& e) {
      entry.rows.clear();
      entry.error = e.what();
    }
  }
  index_ = std::move(entry);
  return index_;
}

const ServedDirectory::SummaryEntry& ServedDirectory::summary(const std::string& id) {
  const fs::path file = trial_dir(id) / "result.h5";
  const FileStamp stamp = stamp_of(file);
  SummaryEntry& entry = summaries_[id];
  if (entry.stamp == stamp) return entry;
  entry = SummaryEntry{stamp, std::nullopt, ""};
  if (stamp.exists) {
    try {
      entry.summary = io::read_summary(file);
    } catch (const std::exception& e) {
      entry.error = e.what();
    }
  }
  return entry;
}

std::map<std::string, json> ServedDirectory::branch_roles(const IndexEntry& idx) {
  std::map<std::string, json> roles;
  if (!idx.branching) return roles;
  // trial.yaml's schedule (a branch's fork step is its cooldown start under it), cached per file.
  const auto schedule_of = [this](const std::string& id) -> std::optional<config::ScheduleConfig> {
    const fs::path file = trial_dir(id) / "trial.yaml";
    const FileStamp stamp = stamp_of(file);
    ScheduleEntry& e = schedules_[id];
    if (e.stamp == stamp && stamp.exists) return e.schedule;
    e = ScheduleEntry{stamp, std::nullopt};
    if (stamp.exists) {
      try {
        e.schedule = config::parse_trial_config(read_text(file, 1 << 20), file.string()).schedule;
      } catch (const std::exception&) {
        // Half a file or another schema: the cell's schedule or no fork step below.
      }
    }
    return e.schedule;
  };
  const auto fork_log = [this](const std::string& id) {
    const fs::path file = trial_dir(id) / "attempts.jsonl";
    const FileStamp stamp = stamp_of(file);
    AttemptsEntry& e = forks_[id];
    if (!(e.stamp == stamp)) {
      const ForkLog log = stamp.exists ? read_fork_log(file) : ForkLog{};
      e = AttemptsEntry{stamp, log.event, log.started};
    }
    return ForkLog{e.fork, e.started};
  };
  // The plan: the trials of one (optimizer, compared values, model, point, seed) differ in their
  // data ratio only, and the longest is the trunk of the shorter ones (the scheduler's trunk_of over
  // experiments/study/plan.hpp's trunk_key_of); their cells differ in the last part of the name,
  // "/x<ratio>".
  std::map<std::string, std::vector<const io::SweepIndexRow*>> groups;
  for (const io::SweepIndexRow& r : idx.rows)
    groups[r.cell.substr(0, r.cell.rfind("/x")) + "\n" + r.point + "\n" + std::to_string(r.seed)].push_back(&r);
  for (const auto& [key, rows] : groups) {
    const io::SweepIndexRow* trunk = rows.front();
    for (const io::SweepIndexRow* r : rows)
      if (r->steps > trunk->steps) trunk = r;
    int branches = 0;
    for (const io::SweepIndexRow* r : rows) {
      if (r->steps >= trunk->steps) continue;
      ++branches;
      // Planned: the cooldown start of the branch's schedule (its own trial.yaml, the trunk's, which
      // differs in train.steps only, or the cell's base when no axis sets a schedule key).
      std::optional<config::ScheduleConfig> schedule = schedule_of(r->trial_id);
      if (!schedule) schedule = schedule_of(trunk->trial_id);
      const bool schedule_axis =
          std::any_of(r->axes.begin(), r->axes.end(), [](const auto& a) { return a.first.rfind("schedule.", 0) == 0; });
      if (!schedule && !schedule_axis && idx.cell_schedules.count(r->cell)) schedule = idx.cell_schedules.at(r->cell);
      std::optional<std::int64_t> step;
      if (schedule) {
        try {
          step = optim::wsd_decay_start(*schedule, r->steps);
        } catch (const std::exception&) {
          // A schedule the function refuses (not wsd): no fork step to show.
        }
      }
      // What happened, once the branch has started: its attempts.jsonl says.
      json role = branch_role(trunk->trial_id, step, fork_log(r->trial_id));
      roles[r->trial_id] = std::move(role);
    }
    if (branches > 0)
      roles[trunk->trial_id] = {
          {"role", "trunk"}, {"branches", branches}, {"text", "trunk of " + std::to_string(branches) + " branch(es)"}};
  }
  return roles;
}

std::string ServedDirectory::overview_json() {
  return kind_ == Kind::sweep ? sweep_overview() : trial_overview().dump();
}

std::string ServedDirectory::sweep_overview() {
  std::lock_guard lock(mutex_);
  json notes = json::array();
  const IndexEntry& idx = index();
  if (!idx.error.empty()) notes.push_back("sweep.h5 left out: " + idx.error);

  const fs::path status_file = root_ / "status.json";
  const FileStamp status_stamp = stamp_of(status_file);
  if (!status_.loaded || !(status_stamp == status_.stamp)) {
    status_ = StatusEntry{status_stamp, true, json(), ""};
    try {
      status_.status = experiments::read_sweep_status(root_);
    } catch (const std::exception& e) {
      status_.error = e.what();
    }
  }
  if (!status_.error.empty()) notes.push_back("status.json left out: " + status_.error);
  const json& status = status_.status;

  std::map<std::string, const json*> live;  // status.json rows by id
  std::vector<std::string> order;
  std::set<std::string> seen;
  if (status.is_object())
    for (const json& t : status.at("trials"))
      if (t.is_object() && t.contains("id") && t["id"].is_string()) live[t["id"].get<std::string>()] = &t;
  std::map<std::string, const io::SweepIndexRow*> indexed;
  for (const io::SweepIndexRow& r : idx.rows) {
    indexed[r.trial_id] = &r;
    if (seen.insert(r.trial_id).second) order.push_back(r.trial_id);
  }
  if (status.is_object())  // trials status.json has and sweep.h5 not (yet, or sweep.h5 will not read), in its order
    for (const json& t : status.at("trials"))
      if (t.is_object() && t.contains("id") && t["id"].is_string() && seen.insert(t["id"].get<std::string>()).second)
        order.push_back(t["id"].get<std::string>());

  // Unchanged files and liveness: the same answer (building it is most of the cost for thousands of
  // trials). The roles are read from their own cached files (attempts.jsonl of the branches).
  const LiveTrials alive = live_trials(root_);
  std::map<std::string, json> roles = branch_roles(idx);
  std::string stamps = alive.key + " " + stamp_text(index_.stamp) + " " + stamp_text(status_.stamp);
  for (const std::string& id : order)
    stamps += " " + (plausible_trial_id(id) ? stamp_text(stamp_of(trial_dir(id) / "result.h5")) : std::string("-"));
  for (const auto& [id, role] : roles) stamps += " " + id + "=" + role.value("text", "");
  if (!overview_.json.empty() && stamps == overview_.stamps) return overview_.json;

  // Counts by state: every state status.json counts (0 or not), and every state a row has, whatever
  // its name (a state a later expt adds is shown and counted like any other).
  std::map<std::string, int> counts;
  if (status.is_object() && status.contains("counts") && status["counts"].is_object())
    for (auto it = status["counts"].begin(); it != status["counts"].end(); ++it) counts[it.key()] = 0;
  json trials = json::array();
  std::map<std::string, json> trial_roles;  // for the trial page
  for (const std::string& id : order) {
    const io::SweepIndexRow* in = indexed.count(id) ? indexed[id] : nullptr;
    const json* st = live.count(id) ? live[id] : nullptr;
    const auto text = [&](const char* key, const std::string& fallback) {
      return st && st->contains(key) && (*st)[key].is_string() ? (*st)[key].get<std::string>() : fallback;
    };
    json row;
    row["id"] = id;
    row["cell"] = text("cell", in ? in->cell : "");
    row["optimizer"] = text("optimizer", in ? in->optimizer : "");
    row["point"] = text("point", in ? in->point : "");
    row["state"] = text("state", in ? in->status : "pending");
    row["seed"] = st && st->contains("seed") ? (*st)["seed"] : (in ? json(in->seed) : json(nullptr));
    row["steps"] = st && st->contains("steps") ? (*st)["steps"] : (in ? json(in->steps) : json(nullptr));
    row["step"] = st && st->contains("step") ? (*st)["step"] : json(nullptr);
    row["loss"] = st && st->contains("loss") ? (*st)["loss"] : json(nullptr);  // live training loss
    row["tokens_per_s"] = st && st->contains("tokens_per_s") ? (*st)["tokens_per_s"] : json(nullptr);
    row["attempts"] = st && st->contains("attempts") ? (*st)["attempts"] : (in ? json(in->n_attempts) : json(0));
    if (st && st->contains("message")) row["message"] = (*st)["message"];
    if (st && st->contains("quarantined")) row["quarantined"] = (*st)["quarantined"];
    row["final_eval_loss"] = in && finished_state(in->status) ? finite_or_null(in->final_eval_loss) : json(nullptr);
    row["best_eval_loss"] = nullptr;
    row["cpu_s"] = nullptr;
    row["tokens"] = in ? json(in->tokens) : json(nullptr);
    if (plausible_trial_id(id)) {
      const SummaryEntry& s = summary(id);
      if (s.summary) {
        row["final_eval_loss"] = finite_or_null(s.summary->final_eval_loss);
        row["best_eval_loss"] = finite_or_null(s.summary->best_eval_loss);
        row["cpu_s"] = s.summary->wall_s * idx.ranks_per_trial;
        row["tokens"] = s.summary->tokens_seen;
        if (row["step"].is_null()) row["step"] = s.summary->steps_done;
      } else if (!s.error.empty()) {
        notes.push_back("trials/" + id + "/result.h5 left out: " + s.error);
      }
    }
    // status.json says "running" until its writer says otherwise; a writer that died cannot. With
    // heartbeats, a trial no live process trains is interrupted (`expt status` says the same).
    if (alive.sweep.any && row["state"] == "running" && !alive.trained.count(id)) row["state"] = "interrupted";
    const std::string state = row["state"].get<std::string>();
    counts[state] += 1;
    row["finished"] = finished_state(state);
    // What the trial is: an extra seed of a confirmed point (search.confirm), a WSD trunk or branch.
    row["confirmation"] = st && st->contains("confirmation") && (*st)["confirmation"].is_boolean()
                              ? (*st)["confirmation"].get<bool>()
                              : false;
    const auto role = roles.find(id);
    row["branch"] = role == roles.end() ? json(nullptr) : role->second;
    std::string role_text = row["confirmation"].get<bool>() ? "confirmation seed" : "";
    if (role != roles.end()) role_text += (role_text.empty() ? "" : "; ") + role->second.value("text", "");
    row["role"] = role_text;
    if (!role_text.empty())
      trial_roles[id] = {{"role", role_text}, {"branch", row["branch"]}, {"confirmation", row["confirmation"]}};
    trials.push_back(std::move(row));
  }

  // Cells: every cell of the trial table, with its coordinate-descent round when the study has them.
  json cells = json::array();
  std::map<std::string, json> rounds;
  if (status.is_object() && status.contains("coordinate_descent"))
    for (const json& c : status["coordinate_descent"])
      if (c.is_object() && c.contains("cell")) rounds[c["cell"].get<std::string>()] = c;
  // search.confirm per cell, as status.json has it and `expt status` prints it.
  std::map<std::string, json> confirmations;
  if (status.is_object() && status.contains("confirmation") && status["confirmation"].is_array())
    for (const json& c : status["confirmation"])
      if (c.is_object() && c.contains("cell") && c["cell"].is_string()) confirmations[c["cell"].get<std::string>()] = c;
  std::set<std::string> cell_seen;
  for (const json& t : trials) {
    const std::string cell = t["cell"].get<std::string>();
    if (!cell_seen.insert(cell).second) continue;
    json c = {{"cell", cell}, {"optimizer", t["optimizer"]}};
    if (rounds.count(cell)) {
      const json& r = rounds[cell];
      for (const char* key : {"round", "centre", "converged", "best_loss", "edge_alarms", "todo"})
        if (r.contains(key)) c[key] = r[key];
    }
    if (confirmations.count(cell)) c["confirmation"] = confirmation_entry(confirmations[cell]);
    cells.push_back(std::move(c));
  }

  json out = {{"kind", "sweep"}, {"path", root_.string()}, {"counts", counts}, {"cells", cells}, {"trials", trials}};
  out["study"] = status.is_object() ? status.value("study", "") : "";
  out["strategy"] = status.is_object() ? status.value("strategy", "") : "";
  out["elapsed_s"] = status.is_object() && status.contains("elapsed_s") ? status["elapsed_s"] : json(nullptr);
  out["ranks_per_trial"] = idx.ranks_per_trial;
  // The command to resume when there is something to resume (`expt status`'s rule: no live process,
  // a trial pending or interrupted); a finished sweep has none.
  const auto count_of = [&counts](const char* state) { return counts.count(state) ? counts.at(state) : 0; };
  const bool resumable = !alive.sweep.running && count_of("pending") + count_of("interrupted") > 0;
  out["liveness"] = {{"state", liveness_word(alive.sweep)},
                     {"alive", alive.sweep.alive},
                     {"command", resumable ? alive.sweep.command : std::string()}};
  out["branching"] = idx.branching;
  out["notes"] = std::move(notes);
  overview_ = OverviewEntry{stamps, out.dump(), std::move(trial_roles)};
  return overview_.json;
}

json ServedDirectory::trial_overview() {
  std::lock_guard lock(mutex_);
  json notes = json::array();
  const io::TrialDirectory dir(root_);
  json row = {{"id", single_trial_id_}, {"cell", ""},       {"optimizer", ""}, {"point", ""},
              {"seed", nullptr},        {"steps", nullptr}, {"loss", nullptr}, {"tokens_per_s", nullptr}};
  row["attempts"] = dir.count_attempts();
  const SummaryEntry& s = summary(single_trial_id_);
  if (s.summary) {
    row["state"] = s.summary->status;
    row["step"] = s.summary->steps_done;
    row["final_eval_loss"] = finite_or_null(s.summary->final_eval_loss);
    row["best_eval_loss"] = finite_or_null(s.summary->best_eval_loss);
    row["cpu_s"] = s.summary->wall_s;
    row["tokens"] = s.summary->tokens_seen;
  } else {
    if (!s.error.empty()) notes.push_back("result.h5 left out: " + s.error);
    // No result yet: running, or stopped and waiting for a resume; its committed progress is the
    // newest checkpoint.
    row["state"] = "unfinished";
    const auto step = dir.latest_checkpoint();
    row["step"] = step ? json(*step) : json(nullptr);
    row["final_eval_loss"] = nullptr;
    row["best_eval_loss"] = nullptr;
    row["cpu_s"] = nullptr;
    row["tokens"] = nullptr;
  }
  try {
    const YAML::Node cfg = YAML::LoadFile((root_ / "trial.yaml").string());
    if (cfg["optimizer"] && cfg["optimizer"]["type"]) row["optimizer"] = cfg["optimizer"]["type"].as<std::string>();
    if (cfg["seed"]) row["seed"] = cfg["seed"].as<std::int64_t>();
    if (cfg["train"] && cfg["train"]["steps"]) row["steps"] = cfg["train"]["steps"].as<std::int64_t>();
  } catch (const std::exception& e) {
    notes.push_back(std::string("trial.yaml left out: ") + e.what());
  }
  json counts = {{row["state"].get<std::string>(), 1}};
  return {{"kind", "trial"},  {"path", root_.string()}, {"study", root_.filename().string()},
          {"strategy", ""},   {"elapsed_s", nullptr},   {"ranks_per_trial", 1},
          {"counts", counts}, {"cells", json::array()}, {"trials", json::array({row})},
          {"notes", notes}};
}

bool ServedDirectory::known_trial(const std::string& id) {
  if (!plausible_trial_id(id)) return false;
  if (kind_ == Kind::trial) return id == single_trial_id_;
  std::lock_guard lock(mutex_);
  for (const io::SweepIndexRow& r : index().rows)
    if (r.trial_id == id) return true;
  std::error_code ec;
  return fs::is_directory(trial_dir(id), ec);
}

std::optional<json> ServedDirectory::trial(const std::string& id) {
  if (!known_trial(id)) return std::nullopt;
  const fs::path dir = trial_dir(id);
  const io::TrialDirectory td(dir);
  json notes = json::array();
  json out = {{"id", id}, {"dir", dir.string()}};
  out["config"] = read_text(dir / "trial.yaml", 1 << 20);
  out["attempts"] = read_attempts(dir / "attempts.jsonl", notes);
  out["quarantined"] = td.quarantined_files();
  const auto checkpoint = td.latest_checkpoint();
  out["latest_checkpoint"] = checkpoint ? json(*checkpoint) : json(nullptr);
  out["log_tail"] = tail_lines(dir / "log.txt", 200);
  // Its role (confirmation seed, WSD trunk or branch) as the overview has it, and the fork points a
  // trunk has committed (forks/step-<c>/COMMIT, experiments/trial/branching.hpp).
  out["role"] = "";
  out["branch"] = nullptr;
  if (kind_ == Kind::sweep) {
    overview_json();
    std::lock_guard lock(mutex_);
    if (const auto r = overview_.roles.find(id); r != overview_.roles.end()) {
      out["role"] = r->second["role"];
      out["branch"] = r->second["branch"];
    }
  }
  if (out["branch"].is_null()) {
    // A branch served as a trial directory, or one sweep.h5 does not list (damaged): its fork line.
    const ForkLog log = read_fork_log(dir / "attempts.jsonl");
    if (log.event.is_object() && log.event.contains("trunk") && log.event["trunk"].is_string()) {
      const json b = branch_role(log.event["trunk"].get<std::string>(), std::nullopt, log);
      out["branch"] = b;
      const std::string text = b["text"].get<std::string>();
      out["role"] = out["role"].get<std::string>() + (out["role"] == "" ? "" : "; ") + text;
    }
  }
  std::vector<std::int64_t> fork_points;
  std::error_code ec;
  for (fs::directory_iterator it(dir / "forks", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::int64_t step = 0;
    const auto [p, err] =
        std::from_chars(name.data() + std::min<std::size_t>(5, name.size()), name.data() + name.size(), step);
    if (name.rfind("step-", 0) == 0 && err == std::errc() && p == name.data() + name.size() &&
        fs::exists(it->path() / "COMMIT"))
      fork_points.push_back(step);
  }
  std::sort(fork_points.begin(), fork_points.end());
  out["fork_points"] = fork_points;
  {
    std::lock_guard lock(mutex_);
    const SummaryEntry& s = summary(id);
    if (s.summary) {
      const io::TrialSummary& v = *s.summary;
      out["summary"] = {{"status", v.status},
                        {"final_eval_loss", finite_or_null(v.final_eval_loss)},
                        {"best_eval_loss", finite_or_null(v.best_eval_loss)},
                        {"diverged_step", v.diverged_step},
                        {"tokens_seen", v.tokens_seen},
                        {"steps_done", v.steps_done},
                        {"wall_s", v.wall_s},
                        {"n_attempts", v.n_attempts},
                        {"n_skipped_steps", v.n_skipped_steps},
                        {"message", v.message}};
    } else {
      out["summary"] = nullptr;
      if (!s.error.empty()) notes.push_back("result.h5 left out: " + s.error);
    }
  }
  // Events (divergence, skipped steps, resumes, checkpoints): from result.h5, or from the closed
  // segments while the trial runs.
  json events = json::array();
  bool from_result = false;
  if (fs::exists(dir / "result.h5")) {
    try {
      events = events_json(io::read_event_rows(dir / "result.h5"));
      from_result = true;
    } catch (const std::exception& e) {
      notes.push_back(std::string("events of result.h5 left out: ") + e.what());
    }
  }
  if (!from_result) {
    try {
      const io::ConsolidatedSegments segs = io::read_consolidated_segments(dir, /*leave_out_newest=*/true);
      events = events_json(segs.events);
      for (const auto& p : segs.report.skipped_unreadable) notes.push_back(p.string() + " left out: will not read");
    } catch (const std::exception& e) {
      notes.push_back(std::string("metrics segments left out: ") + e.what());
    }
  }
  out["events"] = std::move(events);
  out["notes"] = std::move(notes);
  return out;
}

std::optional<std::string> ServedDirectory::metrics_json(const std::string& id, std::size_t max_points) {
  if (!known_trial(id)) return std::nullopt;
  const fs::path dir = trial_dir(id);
  const FileStamp result_stamp = stamp_of(dir / "result.h5");
  std::string stamps = "result.h5=" + stamp_text(result_stamp);
  if (!result_stamp.exists) {
    std::error_code ec;
    std::vector<std::string> parts;
    for (fs::directory_iterator it(dir / "metrics", ec), end; !ec && it != end; it.increment(ec))
      parts.push_back(it->path().filename().string() + "=" + stamp_text(stamp_of(it->path())));
    std::sort(parts.begin(), parts.end());
    for (const std::string& p : parts) stamps += " " + p;
  }
  {
    std::lock_guard lock(mutex_);
    for (auto it = metrics_lru_.begin(); it != metrics_lru_.end(); ++it)
      if (it->first == id) {
        if (it->second.stamps == stamps && it->second.max_points == max_points) {
          metrics_lru_.splice(metrics_lru_.begin(), metrics_lru_, it);
          return metrics_lru_.front().second.body;
        }
        metrics_bytes_ -= it->second.body.size();
        metrics_lru_.erase(it);
        break;
      }
  }

  // Read outside the lock: other pages keep being answered while a long series loads.
  json notes = json::array();
  json out = {{"id", id}};
  bool done = false;
  if (result_stamp.exists) {
    try {
      io::EvalSchema schema;
      const auto train = io::read_train_rows(dir / "result.h5");
      const auto eval = io::read_eval_rows(dir / "result.h5", &schema);
      out["source"] = "result.h5";
      out["train_rows"] = train.size();
      out["eval_rows"] = eval.size();
      out["train"] = train_columns(train, max_points);
      out["eval"] = eval_columns(eval, schema, max_points);
      done = true;
    } catch (const std::exception& e) {
      notes.push_back(std::string("result.h5 left out: ") + e.what());
    }
  }
  if (!done) {
    try {
      const io::ConsolidatedSegments segs = io::read_consolidated_segments(dir, /*leave_out_newest=*/true);
      out["source"] = "segments";
      out["train_rows"] = segs.train.size();
      out["eval_rows"] = segs.eval.size();
      out["train"] = train_columns(segs.train, max_points);
      out["eval"] = eval_columns(segs.eval, segs.schema, max_points);
      for (const auto& p : segs.report.skipped_unreadable) notes.push_back(p.string() + " left out: will not read");
      out["left_out"] = segs.left_out.empty() ? json(nullptr) : json(segs.left_out.filename().string());
      if (!segs.left_out.empty())
        notes.push_back(segs.left_out.filename().string() +
                        " not read: the newest segment, a running trainer may be "
                        "writing it");
    } catch (const std::exception& e) {
      notes.push_back(std::string("metrics segments left out: ") + e.what());
      out["source"] = "none";
      out["train_rows"] = 0;
      out["eval_rows"] = 0;
      out["train"] = train_columns({}, max_points);
      out["eval"] = json::object({{"step", json::array()}, {"tokens", json::array()}, {"wall_s", json::array()}});
    }
  }
  out["notes"] = std::move(notes);
  std::string body = out.dump();

  std::lock_guard lock(mutex_);
  if (body.size() <= metrics_cache_limit_) {
    metrics_lru_.push_front({id, MetricsEntry{stamps, max_points, body}});
    metrics_bytes_ += body.size();
    while (metrics_bytes_ > metrics_cache_limit_ && !metrics_lru_.empty()) {
      metrics_bytes_ -= metrics_lru_.back().second.body.size();
      metrics_lru_.pop_back();
    }
  }
  return body;
}

std::size_t ServedDirectory::metrics_cache_size() {
  std::lock_guard lock(mutex_);
  return metrics_bytes_;
}

std::string ServedDirectory::analysis_json() {
  if (kind_ != Kind::sweep) throw std::runtime_error(root_.string() + " is a trial directory: no study to analyse");
  const FileStamp stamp = stamp_of(root_ / "sweep.h5");
  {
    std::lock_guard lock(mutex_);
    if (stamp.exists && stamp == analysis_.stamp && live_trials(root_).key == analysis_.liveness) return analysis_.json;
  }
  const std::string liveness = live_trials(root_).key;
  // The same calls as `expt analyze DIR --format json` (analysis/analyze_command.cpp), default options.
  const analysis::SweepData data = analysis::load_sweep(root_);
  const analysis::Analysis a = analysis::analyze(data, analysis::AnalysisOptions{});
  json out = json::parse(analysis::render_json(a, analysis::make_tables(a)));
  // And for the curves' "best config per cell": the finished trials of each cell's best point as
  // expt analyze chooses it (docs/analysis.md "Points with more seeds": with confirmation seeds the
  // lowest mean over each point's own seeds is not the best).
  json best = json::object();
  for (const analysis::CellResult& c : a.cells) {
    if (!c.has_best) continue;
    json ids = json::array();
    for (const analysis::TrialRow& t : data.trials)
      if (t.cell == c.info.name && t.point == c.best.point &&
          std::find(c.best.seeds.begin(), c.best.seeds.end(), t.seed) != c.best.seeds.end())
        ids.push_back(t.id);
    best[c.info.name] = {{"point", c.best.point}, {"trials", ids}};
  }
  out["best_trials"] = std::move(best);
  std::string text = out.dump();
  std::lock_guard lock(mutex_);
  analysis_ = AnalysisEntry{stamp, liveness, text};
  return text;
}

std::optional<fs::path> ServedDirectory::resolve_file(const std::string& relative) const {
  if (relative.empty() || relative.size() > 4096 || relative.find('\0') != std::string::npos ||
      relative.find('\\') != std::string::npos)
    return std::nullopt;
  const fs::path rel(relative);
  if (rel.is_absolute() || rel.has_root_name()) return std::nullopt;
  for (const fs::path& part : rel) {
    const std::string p = part.string();
    if (p.empty() || p == "." || p == "..") return std::nullopt;
  }
  std::error_code ec;
  const fs::path real = fs::canonical(root_ / rel, ec);
  if (ec || !fs::is_regular_file(real, ec)) return std::nullopt;
  if (is_under(real, root_)) return real;
  // An added study's trials/ is a link to the first study's trials (docs/sweeps.md).
  const fs::path trials = fs::canonical(root_ / "trials", ec);
  if (!ec && is_under(real, trials)) return real;
  return std::nullopt;
}

}  // namespace expt::serve
