#include "experiments/trial/branching.hpp"

#include <fmt/format.h>

#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/checkpoint.hpp"
#include "core/io/metrics.hpp"
#include "core/io/results.hpp"
#include "core/io/trial_identity.hpp"
#include "optimizers/schedule.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

io::CheckpointStore fork_store(const fs::path& trial_dir) { return io::CheckpointStore(trial_dir / "forks"); }

fs::path fork_metrics_path(const fs::path& trial_dir, std::int64_t step) {
  return trial_dir / "forks" / fmt::format("step-{}", step) / "metrics.h5";
}

// Writes `rows` as one metrics segment at `path` (through <path>.tmp and a rename, so that a crash
// leaves either no file or a whole one).
void write_segment(const fs::path& path, const io::EvalSchema& schema, int attempt,
                   const std::vector<io::TrainRow>& train, const std::vector<io::EvalRow>& eval,
                   const std::vector<io::EventRow>& events) {
  fs::path tmp = path;
  tmp += ".tmp";
  fs::remove(tmp);
  {
    io::MetricsSegmentWriter w(tmp, schema, attempt, 0);
    for (const io::TrainRow& r : train) w.append_train(r);
    for (const io::EvalRow& r : eval) w.append_eval(r);
    for (const io::EventRow& r : events) w.append_event(r);
    w.close();
  }
  io::fsync_file(tmp);
  io::rename_atomic(tmp, path);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string branch_prefix_mismatch(const config::TrialConfig& trunk, const config::TrialConfig& branch,
                                   std::int64_t step) {
  const auto keys = [](const config::TrialConfig& cfg) {
    std::set<std::pair<std::string, std::string>> out;
    for (auto& kv : config::flatten_config(cfg))
      if (kv.first != "train.steps" && kv.first != "out") out.insert(kv);
    return out;
  };
  const auto a = keys(trunk), b = keys(branch);
  if (a != b) {
    for (const auto& kv : a)
      if (b.count(kv) == 0) return fmt::format("the configs differ in {} (not only in train.steps)", kv.first);
    for (const auto& kv : b)
      if (a.count(kv) == 0) return fmt::format("the configs differ in {} (not only in train.steps)", kv.first);
  }
  if (branch.schedule.type != "wsd") return fmt::format("schedule.type is {}, not wsd", branch.schedule.type);
  if (branch.schedule.warmup > 0 && branch.schedule.warmup < 1)
    return fmt::format("schedule.warmup {} is a fraction of train.steps, not a number of steps",
                       branch.schedule.warmup);
  for (const config::TrialConfig* cfg : {&trunk, &branch}) {
    const std::int64_t c = optim::wsd_decay_start(cfg->schedule, cfg->train.steps);
    if (step < 1 || step > c)
      return fmt::format("step {} is outside 1..{}, the stable phase of the run of {} steps", step, c,
                         cfg->train.steps);
  }
  return "";
}

bool has_fork_point(const fs::path& trial_dir, std::int64_t step) { return fork_store(trial_dir).committed(step); }

void save_fork_point(const io::TrialDirectory& dir, std::int64_t step, const StateDict& state) {
  if (has_fork_point(dir.path(), step)) return;
  io::ConsolidatedSegments rows = io::read_consolidated_segments(dir.path(), false);
  std::erase_if(rows.train, [&](const io::TrainRow& r) { return r.step > step; });
  std::erase_if(rows.eval, [&](const io::EvalRow& r) { return r.step > step; });
  std::erase_if(rows.events, [&](const io::EventRow& r) { return r.step > step; });
  const fs::path metrics = fork_metrics_path(dir.path(), step);
  fs::create_directories(metrics.parent_path());
  write_segment(metrics, rows.schema, 1, rows.train, rows.eval, rows.events);
  // Every fork point is kept (a branch planned later may still need it).
  fork_store(dir.path()).save(step, state, std::numeric_limits<int>::max());
}

std::string fork_from_trunk(const fs::path& trunk_dir, const io::TrialDirectory& branch,
                            const config::TrialConfig& branch_cfg, std::int64_t step, int attempt) {
  if (!has_fork_point(trunk_dir, step))
    return fmt::format("trunk {} has no fork point at step {}", trunk_dir.string(), step);
  const auto trunk = io::read_directory_trial(trunk_dir);
  if (!trunk || trunk->id.empty()) return fmt::format("{} holds no trial of this config schema", trunk_dir.string());
  const config::TrialConfig trunk_cfg =
      config::parse_trial_config(read_text(trunk_dir / "trial.yaml"), (trunk_dir / "trial.yaml").string());
  if (config::config_hash(trunk_cfg) != trunk->id)
    return fmt::format("{}/trial.yaml does not hash to its id {}", trunk_dir.string(), trunk->id);
  if (const std::string why = branch_prefix_mismatch(trunk_cfg, branch_cfg, step); !why.empty())
    return fmt::format("trunk {} is not a prefix of this trial: {}", trunk->id, why);
  StateDict state = fork_store(trunk_dir).load(step);
  if (state.string("trainer/config_hash") != trunk->id)
    return fmt::format("fork point step-{} of {} belongs to another config ({})", step, trunk_dir.string(),
                       state.string("trainer/config_hash"));
  if (state.scalar_int("trainer/step") != step)
    return fmt::format("fork point step-{} of {} holds step {}", step, trunk_dir.string(),
                       state.scalar_int("trainer/step"));
  io::EvalSchema schema;
  const fs::path metrics = fork_metrics_path(trunk_dir, step);
  const std::vector<io::EvalRow> eval = io::read_eval_rows(metrics, &schema);
  const std::vector<io::TrainRow> train = io::read_train_rows(metrics);
  if (static_cast<std::int64_t>(train.size()) != step || (!train.empty() && train.back().step != step))
    return fmt::format("{} holds {} train rows, not the {} of steps 1..{}", metrics.string(), train.size(), step, step);
  // Metrics first, the checkpoint's COMMIT last: a crash in between leaves no checkpoint, and the
  // next attempt forks again (over the same segment name, or a later attempt's).
  write_segment(branch.segment_path(attempt, 0), schema, attempt, train, eval, io::read_event_rows(metrics));
  state.put_string("trainer/config_hash", config::config_hash(branch_cfg));
  branch.checkpoints().save(step, state);
  return "";
}

}  // namespace expt::experiments
