// A fixture sweep with a known answer: a real study is planned (experiments::Planner), and every
// trial gets a synthetic outcome written with the project's own writers (a metrics segment through
// io::MetricsSegmentWriter, result.h5 through io::write_result), then the coordinator's own
// Scheduler writes sweep.h5 and status.json from those trial directories.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "analysis/analysis.hpp"
#include "core/config/loader.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/metrics.hpp"
#include "core/io/results.hpp"
#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"
#include "experiments/sweep/scheduler.hpp"

namespace fixture {

namespace fs = std::filesystem;
using namespace expt;

struct Outcome {
  std::string status = "COMPLETED";  // COMPLETED | DIVERGED | FAILED
  double loss = 0;                   // final eval loss (COMPLETED)
  double wall_s = 10;
  double step_s = 0;  // > 0: train rows at every step, this many seconds apart (the step cost)
  // > 0: the final value of an accuracy column "token_acc@<seq_len>" (evals at acc - 0.1 (4 - k))
  double token_acc = 0;
};

// Evals at steps/4, steps/2, 3 steps/4 and steps with loss = final + 0.1 * (4 - k), k = 1..4.
inline double eval_loss(double final_loss, int k) { return final_loss + 0.1 * (4 - k); }

// Plans `study_text` (grid) and writes an outcome for every trial for which `outcome` returns one
// (the others stay pending), then sweep.h5 and status.json. Returns the planner's trials.
inline std::vector<experiments::PlannedTrial> write_sweep(
    const fs::path& dir, const std::string& study_text,
    const std::function<std::optional<Outcome>(const experiments::PlannedTrial&)>& outcome) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const experiments::Study study = experiments::parse_study(study_text, "fixture.yaml");
  experiments::Planner planner(study);
  for (const experiments::PlannedTrial& t : planner.static_trials()) {
    const auto o = outcome(t);
    if (!o) continue;
    const fs::path tdir = dir / "trials" / t.id;
    const int len = t.config.task.seq_len;
    const std::int64_t tokens_per_step = static_cast<std::int64_t>(t.config.train.batch_size) * len;
    const std::string col = "loss@" + std::to_string(len);
    io::EvalSchema schema{{col}, {}};
    if (o->token_acc > 0) schema.fields.push_back("token_acc@" + std::to_string(len));
    {
      io::MetricsSegmentWriter w(tdir / "metrics" / "seg-1-0.h5", schema, 1, 0);
      if (o->step_s > 0)
        for (std::int64_t step = 1; step <= t.config.train.steps; ++step)
          w.append_train(io::TrainRow{step, step * tokens_per_step, o->step_s * static_cast<double>(step), 1.0f, 0.0f,
                                      0.0f, 0.0f, 0.0f, 0, 0});
      for (int k = 1; k <= 4; ++k) {
        const std::int64_t step = t.config.train.steps * k / 4;
        if (o->status != "COMPLETED" && k > 2) break;
        const float value = o->status == "COMPLETED" ? static_cast<float>(eval_loss(o->loss, k)) : 3.0f;
        std::vector<float> values = {value};
        if (o->token_acc > 0) values.push_back(static_cast<float>(o->token_acc - 0.1 * (4 - k)));
        w.append_eval(io::EvalRow{step, step * tokens_per_step, 1.0 * k, values, {}});
      }
      w.close();
    }
    io::ResultInfo info;
    info.trial_id = t.id;
    info.config_hash = t.id;
    info.config_yaml = config::to_canonical_yaml(t.config);  // what the trial ran (the analysis labels cells by it)
    info.hparams = {{"optimizer.lr", t.config.optimizer.lr},
                    {"optimizer.weight_decay", t.config.optimizer.weight_decay}};
    info.scale = {{"steps", static_cast<std::int64_t>(t.config.train.steps)}};
    io::TrialSummary s;
    s.status = o->status;
    s.final_eval_loss = o->status == "COMPLETED" ? o->loss : std::numeric_limits<double>::infinity();
    s.best_eval_loss = s.final_eval_loss;
    s.steps_done = o->status == "COMPLETED" ? t.config.train.steps : t.config.train.steps / 2;
    s.tokens_seen = s.steps_done * tokens_per_step;
    s.wall_s = o->wall_s;
    s.n_attempts = 1;
    if (o->status == "DIVERGED") s.diverged_step = s.steps_done;
    if (o->status == "FAILED") s.message = "fixture failure";
    io::write_result(tdir, info, s);
    io::append_line_durable(tdir / "attempts.jsonl", R"({"event":"start","attempt":1})");
  }
  experiments::Scheduler sched(planner, dir);
  sched.write_status(0);
  sched.write_index();
  return planner.static_trials();
}

// The analysed cell and the speedup row of a cell name (a test failure when absent).
inline const analysis::CellResult& cell(const analysis::Analysis& a, const std::string& name) {
  for (const auto& c : a.cells)
    if (c.info.name == name) return c;
  FAIL("no cell " << name);
  return a.cells.front();
}

inline const analysis::SpeedupRow& speedup(const analysis::Analysis& a, const std::string& name) {
  for (const auto& r : a.speedups)
    if (r.cell == name) return r;
  FAIL("no speedup row " << name);
  return a.speedups.front();
}

}  // namespace fixture
