// Consolidation of metrics segments into result.h5.
//
// Every row written by a test carries the attempt that wrote it (tokens = step * 1000 + attempt),
// so a test sees not only which steps survived but from which attempt. Expected outcomes come from
// the scenario itself (hand-derived), and, in the randomized test, from a model of the run as a
// timeline: a resume from checkpoint c discards everything logged after c, each executed step is
// logged, and rows lost with an unreadable segment are gone. The model never looks at segment
// files or their order, which is what the implementation works from.
#include <catch2/catch.hpp>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/io/hdf5.hpp"
#include "core/io/results.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
namespace io = expt::io;
namespace h5 = expt::io::h5;
using expt::io::test::bits;
using expt::io::test::read_whole_file;
using expt::io::test::TempDir;
using expt::io::test::write_whole_file;

namespace {

const io::EvalSchema kSchema{{"loss@4", "seq_acc@4"}, {4}};

std::int64_t tag(std::int64_t step, int attempt) { return step * 1000 + attempt; }

io::TrainRow train_row(std::int64_t step, int attempt) {
  return io::TrainRow{step,
                      tag(step, attempt),
                      0.01 * static_cast<double>(step),
                      1.0f / static_cast<float>(step + 1),
                      1e-3f,
                      1.0f,
                      0.1f,
                      5.0f,
                      static_cast<std::uint8_t>(step % 10 == 7),
                      0};
}

io::EvalRow eval_row(std::int64_t step, int attempt) {
  const float s = static_cast<float>(step);
  return io::EvalRow{step, tag(step, attempt), 0.5, {s, static_cast<float>(attempt)}, {{s, s + 1, s + 2, s + 3}}};
}

fs::path segment_path(const fs::path& trial, int attempt, std::int64_t first_step) {
  return trial / "metrics" / ("seg-" + std::to_string(attempt) + "-" + std::to_string(first_step) + ".h5");
}

// A closed segment of attempt `attempt` with train rows [train_from, train_to] and eval rows at the
// listed steps (every row tagged with the attempt).
fs::path write_segment(const fs::path& trial, int attempt, std::int64_t first_step, std::int64_t train_from,
                       std::int64_t train_to, const std::vector<std::int64_t>& eval_steps) {
  const fs::path path = segment_path(trial, attempt, first_step);
  io::MetricsSegmentWriter w(path, kSchema, attempt, first_step);
  for (std::int64_t s = train_from; s <= train_to; ++s) {
    w.append_train(train_row(s, attempt));
    if (s % 50 == 0) w.append_event({s, 0.0, "checkpoint", "attempt " + std::to_string(attempt)});
  }
  for (std::int64_t s : eval_steps) w.append_eval(eval_row(s, attempt));
  w.close();
  return path;
}

io::ResultInfo info() {
  io::ResultInfo r;
  r.trial_id = "t0123456789abcdef";
  r.config_hash = "0123456789abcdef";
  r.config_yaml = "seed: 7\noptimizer: {type: adamw, lr: 1.0e-03}\n";
  r.hparams = {{"optimizer.lr", 1e-25}, {"train.steps", std::int64_t{200}}, {"optimizer.type", std::string("adamw")}};
  r.scale = {{"n_params", std::int64_t{12345}}, {"data_ratio", 8.0}};
  return r;
}

io::TrialSummary summary(const std::string& status = "COMPLETED") {
  io::TrialSummary s;
  s.status = status;
  s.final_eval_loss = 0.25;
  s.best_eval_loss = 0.125;
  s.steps_done = 200;
  s.tokens_seen = 200 * 512;
  s.wall_s = 12.5;
  s.n_attempts = 2;
  return s;
}

// (step, attempt) of every row of a result file.
std::vector<std::pair<std::int64_t, int>> train_of(const fs::path& result) {
  std::vector<std::pair<std::int64_t, int>> out;
  for (const auto& r : io::read_train_rows(result)) {
    REQUIRE(r.tokens / 1000 == r.step);
    out.emplace_back(r.step, static_cast<int>(r.tokens % 1000));
  }
  return out;
}
std::vector<std::pair<std::int64_t, int>> eval_of(const fs::path& result) {
  std::vector<std::pair<std::int64_t, int>> out;
  for (const auto& r : io::read_eval_rows(result, nullptr)) {
    // The prefix-accuracy row must be the one of this eval row (filtered together).
    REQUIRE(r.prefix_acc.size() == 1);
    REQUIRE(r.prefix_acc[0][0] == static_cast<float>(r.step));
    REQUIRE(r.values[1] == static_cast<float>(r.tokens % 1000));
    out.emplace_back(r.step, static_cast<int>(r.tokens % 1000));
  }
  return out;
}

// Steps [from, to] all from one attempt.
std::vector<std::pair<std::int64_t, int>> span_of(std::int64_t from, std::int64_t to, int attempt) {
  std::vector<std::pair<std::int64_t, int>> out;
  for (std::int64_t s = from; s <= to; ++s) out.emplace_back(s, attempt);
  return out;
}
std::vector<std::pair<std::int64_t, int>> concat(std::vector<std::pair<std::int64_t, int>> a,
                                                 const std::vector<std::pair<std::int64_t, int>>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::set<fs::path> as_set(const std::vector<fs::path>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("consolidation: crash in the middle of a segment", "[results]") {
  // Attempt 1 logs 1..100, checkpoints at 100, logs 101..150 and crashes (its segment still
  // readable). Attempt 2 resumes from 100 and finishes at 200.
  TempDir trial;
  const auto s10 = write_segment(trial.path(), 1, 0, 1, 100, {0, 50, 100});
  const auto s11 = write_segment(trial.path(), 1, 101, 101, 150, {150});
  const auto s21 = write_segment(trial.path(), 2, 101, 101, 200, {150, 200});
  const auto report = io::write_result(trial.path(), info(), summary());
  REQUIRE(as_set(report.used) == std::set<fs::path>{s10, s11, s21});
  REQUIRE(report.skipped_unreadable.empty());
  const auto result = trial / "result.h5";
  REQUIRE(train_of(result) == concat(span_of(1, 100, 1), span_of(101, 200, 2)));
  REQUIRE(eval_of(result) == std::vector<std::pair<std::int64_t, int>>{{0, 1}, {50, 1}, {100, 1}, {150, 2}, {200, 2}});
  const auto events = io::read_event_rows(result);
  REQUIRE(events.size() == 4);  // 50 and 100 from attempt 1, 150 and 200 from attempt 2
  REQUIRE(events[1].detail == "attempt 1");
  REQUIRE(events[2].step == 150);
  REQUIRE(events[2].detail == "attempt 2");
  REQUIRE_FALSE(fs::exists(trial / "result.h5.tmp"));
}

TEST_CASE("read_consolidated_segments leaves out the newest segment but keeps its cut", "[results]") {
  // What a reader of a running trial sees (expt serve): seg-2-101 may be open, so it is not read,
  // and its first_step still cuts the superseded rows 101..150 of seg-1-101.
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 100, {0, 50, 100});
  write_segment(trial.path(), 1, 101, 101, 150, {150});
  const auto s21 = write_segment(trial.path(), 2, 101, 101, 200, {150, 200});
  const io::ConsolidatedSegments live = io::read_consolidated_segments(trial.path(), true);
  REQUIRE(live.left_out == s21);
  REQUIRE(live.train.size() == 100);
  REQUIRE(live.train.front().step == 1);
  REQUIRE(live.train.back().step == 100);
  REQUIRE(live.eval.size() == 3);
  REQUIRE(live.report.used.size() == 2);
  REQUIRE_FALSE(fs::exists(trial / "result.h5"));
  // Without leaving it out: exactly what write_result stores.
  const io::ConsolidatedSegments all = io::read_consolidated_segments(trial.path(), false);
  REQUIRE(all.left_out.empty());
  REQUIRE(all.train.size() == 200);
  REQUIRE(all.train[150].step == 151);
}

TEST_CASE("consolidation: crash between closing a segment and committing its checkpoint", "[results]") {
  // Attempt 1 closes seg-1-101 after step 200, but dies before COMMIT of step 200: attempt 2
  // resumes from 100 and redoes 101..200.
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 100, {0, 100});
  write_segment(trial.path(), 1, 101, 101, 200, {200});
  write_segment(trial.path(), 2, 101, 101, 250, {200, 250});
  io::write_result(trial.path(), info(), summary());
  const auto result = trial / "result.h5";
  REQUIRE(train_of(result) == concat(span_of(1, 100, 1), span_of(101, 250, 2)));
  REQUIRE(eval_of(result) == std::vector<std::pair<std::int64_t, int>>{{0, 1}, {100, 1}, {200, 2}, {250, 2}});
}

TEST_CASE("consolidation: a restart from before the first_step of several earlier segments", "[results]") {
  // Attempt 1 wrote seg-1-101 (101..200) and seg-1-201 (201..230), but checkpoint 200 cannot be
  // used (its state was quarantined, or a writer opened seg-1-201 before COMMIT and then died):
  // attempt 2 resumes from 100. Cutting each segment only at the NEXT segment's first_step would
  // keep 101..200 of attempt 1 next to 101..200 of attempt 2; every later first_step must cut.
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 100, {0, 100});
  write_segment(trial.path(), 1, 101, 101, 200, {200});
  write_segment(trial.path(), 1, 201, 201, 230, {});
  write_segment(trial.path(), 2, 101, 101, 300, {200, 300});
  io::write_result(trial.path(), info(), summary());
  const auto result = trial / "result.h5";
  REQUIRE(train_of(result) == concat(span_of(1, 100, 1), span_of(101, 300, 2)));
  REQUIRE(eval_of(result) == std::vector<std::pair<std::int64_t, int>>{{0, 1}, {100, 1}, {200, 2}, {300, 2}});
}

TEST_CASE("consolidation: restarts from scratch keep only the last attempt", "[results]") {
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 30, {0});
  write_segment(trial.path(), 2, 0, 1, 20, {0});
  write_segment(trial.path(), 3, 0, 1, 50, {0, 50});
  io::write_result(trial.path(), info(), summary());
  REQUIRE(train_of(trial / "result.h5") == span_of(1, 50, 3));
  REQUIRE(eval_of(trial / "result.h5") == std::vector<std::pair<std::int64_t, int>>{{0, 3}, {50, 3}});
}

TEST_CASE("consolidation: unreadable segments are skipped and reported", "[results]") {
  TempDir trial;
  const auto s10 = write_segment(trial.path(), 1, 0, 1, 100, {0, 100});
  // Crash tail of attempt 1, truncated (as a killed writer can leave it).
  const auto s11 = write_segment(trial.path(), 1, 101, 101, 180, {150});
  const std::string full = read_whole_file(s11);
  write_whole_file(s11, full.substr(0, full.size() / 2));
  // Attempt 2: one good segment up to its checkpoint at 150, then a crash tail that is garbage.
  const auto s21 = write_segment(trial.path(), 2, 101, 101, 150, {150});
  const auto s22 = segment_path(trial.path(), 2, 151);
  write_whole_file(s22, std::string(3000, '\x5a'));
  // Attempt 3 resumes from 150.
  const auto s31 = write_segment(trial.path(), 3, 151, 151, 200, {200});
  // Files that are not segments of this scheme are reported, never used.
  const auto bad_name = trial / "metrics" / "seg-1-abc.h5";
  const auto zero_padded = trial / "metrics" / "seg-01-0.h5";
  fs::copy_file(s10, bad_name);
  fs::copy_file(s10, zero_padded);
  // A readable file whose attributes contradict its name (seg-1-0 renamed to seg-4-5).
  const auto renamed = segment_path(trial.path(), 4, 5);
  fs::copy_file(s10, renamed);

  const auto report = io::write_result(trial.path(), info(), summary("FAILED"));
  REQUIRE(as_set(report.used) == std::set<fs::path>{s10, s21, s31});
  REQUIRE(as_set(report.skipped_unreadable) == std::set<fs::path>{s11, s22, bad_name, zero_padded, renamed});
  // seg-4-5 still marks a restart at step 5 (its name is all that is known of it), so attempt 3's
  // rows at >= 5 are cut by it: a contradictory file makes the damage visible, never duplicates.
  REQUIRE(train_of(trial / "result.h5") == span_of(1, 4, 1));
  fs::remove(renamed);
  const auto report2 = io::write_result(trial.path(), info(), summary("FAILED"));
  REQUIRE(report2.skipped_unreadable.size() == 4);
  REQUIRE(train_of(trial / "result.h5") ==
          concat(concat(span_of(1, 100, 1), span_of(101, 150, 2)), span_of(151, 200, 3)));
  REQUIRE(eval_of(trial / "result.h5") ==
          std::vector<std::pair<std::int64_t, int>>{{0, 1}, {100, 1}, {150, 2}, {200, 3}});
}

TEST_CASE("consolidation: an unreadable last segment still supersedes what it restarted", "[results]") {
  // Attempt 2 resumed from 100 and its only segment was lost: attempt 1's 101..200 belong to a
  // superseded run and are not mixed in; the result ends at 100 (docs/results-format.md).
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 100, {0, 100});
  write_segment(trial.path(), 1, 101, 101, 200, {200});
  write_whole_file(segment_path(trial.path(), 2, 101), "not hdf5");
  const auto report = io::write_result(trial.path(), info(), summary("FAILED"));
  REQUIRE(report.skipped_unreadable.size() == 1);
  REQUIRE(train_of(trial / "result.h5") == span_of(1, 100, 1));
}

TEST_CASE("consolidation: segments with different eval schemas are refused", "[results]") {
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 10, {0});
  {
    io::MetricsSegmentWriter w(segment_path(trial.path(), 2, 0), io::EvalSchema{{"loss@8"}, {}}, 2, 0);
    w.append_train(train_row(1, 2));
  }
  REQUIRE_THROWS_AS(io::write_result(trial.path(), info(), summary()), std::runtime_error);
  REQUIRE_FALSE(fs::exists(trial / "result.h5"));
  REQUIRE_FALSE(fs::exists(trial / "result.h5.tmp"));
}

TEST_CASE("result.h5 carries provenance, config, hparams, scale and summary", "[results]") {
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 30, {0, 30});
  io::TrialSummary s = summary("DIVERGED");
  s.final_eval_loss = std::numeric_limits<double>::infinity();
  s.diverged_step = 31;
  s.message = std::string(5000, 'm');
  s.n_skipped_steps = 999;  // ignored: counted from the rows
  io::write_result(trial.path(), info(), s);
  const auto result = trial / "result.h5";

  const auto back = io::read_summary(result);
  REQUIRE(back.status == "DIVERGED");
  REQUIRE(back.final_eval_loss == std::numeric_limits<double>::infinity());
  REQUIRE(back.best_eval_loss == 0.125);
  REQUIRE(back.diverged_step == 31);
  REQUIRE(back.tokens_seen == 200 * 512);
  REQUIRE(back.steps_done == 200);
  REQUIRE(back.wall_s == 12.5);
  REQUIRE(back.n_attempts == 2);
  REQUIRE(back.n_skipped_steps == 3);  // steps 7, 17, 27 (step % 10 == 7)
  REQUIRE(back.message == std::string(4096, 'm'));

  const auto hp = io::read_attribute_group(result, "hparams");  // name order
  REQUIRE(hp.size() == 3);
  REQUIRE(hp[0].first == "optimizer.lr");
  REQUIRE(bits(std::get<double>(hp[0].second)) == bits(1e-25));
  REQUIRE(std::get<std::string>(hp[1].second) == "adamw");
  REQUIRE(std::get<std::int64_t>(hp[2].second) == 200);
  const auto sc = io::read_attribute_group(result, "scale");
  REQUIRE(std::get<double>(sc[0].second) == 8.0);
  REQUIRE(std::get<std::int64_t>(sc[1].second) == 12345);

  h5::File f = h5::open_file(result);
  REQUIRE(h5::read_int_attribute(f, "schema_version") == 1);
  REQUIRE(h5::read_string_attribute(f, "trial_id") == "t0123456789abcdef");
  REQUIRE(h5::read_string_attribute(f, "config_hash") == "0123456789abcdef");
  REQUIRE(h5::read_string_attribute(f, "status") == "DIVERGED");
  REQUIRE_FALSE(h5::read_string_attribute(f, "git_sha").empty());
  // ISO 8601 UTC, "YYYY-MM-DDTHH:MM:SSZ" (std::regex is avoided: GCC 12 warns inside it under ASan).
  const std::string created = h5::read_string_attribute(f, "created_utc");
  const std::string shape = "dddd-dd-ddTdd:dd:ddZ";
  REQUIRE(created.size() == shape.size());
  for (std::size_t k = 0; k < shape.size(); ++k)
    REQUIRE((shape[k] == 'd' ? std::isdigit(static_cast<unsigned char>(created[k])) != 0 : created[k] == shape[k]));
  const auto build = nlohmann::json::parse(h5::read_string_attribute(f, "build_info"));
  REQUIRE(build.at("hdf5_library").get<std::string>() == h5::library_version());
  REQUIRE_FALSE(build.at("compiler").get<std::string>().empty());
  REQUIRE(h5::read_string_dataset(f, "config") == info().config_yaml);
}

TEST_CASE("write_result validates its input and replaces result.h5 whole", "[results]") {
  TempDir trial;
  write_segment(trial.path(), 1, 0, 1, 10, {0});
  REQUIRE_THROWS_AS(io::write_result(trial.path(), info(), summary("DONE")), std::invalid_argument);
  REQUIRE_FALSE(fs::exists(trial / "result.h5"));
  io::ResultInfo dup = info();
  dup.hparams.push_back({"optimizer.lr", 1.0});
  REQUIRE_THROWS_AS(io::write_result(trial.path(), dup, summary()), std::invalid_argument);
  REQUIRE_FALSE(fs::exists(trial / "result.h5"));
  REQUIRE_FALSE(fs::exists(trial / "result.h5.tmp"));

  io::write_result(trial.path(), info(), summary("RUNNING"));
  REQUIRE(io::read_summary(trial / "result.h5").status == "RUNNING");
  write_segment(trial.path(), 1, 11, 11, 20, {20});
  io::write_result(trial.path(), info(), summary("COMPLETED"));
  REQUIRE(io::read_summary(trial / "result.h5").status == "COMPLETED");
  REQUIRE(train_of(trial / "result.h5") == span_of(1, 20, 1));

  // A trial without any segment still gets a (metrics-empty) result.
  TempDir empty;
  const auto report = io::write_result(empty.path(), info(), summary("FAILED"));
  REQUIRE(report.used.empty());
  REQUIRE(io::read_train_rows(empty / "result.h5").empty());
}

// ---- randomized histories against the timeline model ----

namespace {

struct Model {
  std::map<std::int64_t, int> train, eval;  // step -> attempt whose row stands
  void truncate(std::int64_t from) {
    train.erase(train.lower_bound(from), train.end());
    eval.erase(eval.lower_bound(from), eval.end());
  }
};

// Simulates a trainer: checkpoint every K steps (segment closed, checkpoint, COMMIT, new segment),
// eval every E steps and at the end, keep=2 retention; crashes at random points: mid-segment
// (segment readable or damaged), between segment close and COMMIT, after the next segment was
// opened but before COMMIT, and committed checkpoints whose state turns out damaged.
struct Simulation {
  Simulation(unsigned seed, fs::path trial_dir) : rng(seed), trial(std::move(trial_dir)) {}
  std::mt19937 rng;
  fs::path trial;
  std::int64_t total = 40, K = 5, E = 4;
  Model model;
  std::set<fs::path> expect_used, expect_skipped;
  std::set<std::int64_t> committed;  // retained (newest two by step, as CheckpointStore keeps them)
  std::set<std::int64_t> damaged;    // committed, but the state will not load (quarantined)
  std::int64_t max_first_step = -1;  // over the segments opened so far
  bool deep_restart = false;         // an attempt restarted below an earlier segment's first_step

  std::unique_ptr<io::MetricsSegmentWriter> open_segment(int attempt, std::int64_t first) {
    max_first_step = std::max(max_first_step, first);
    return std::make_unique<io::MetricsSegmentWriter>(segment_path(trial, attempt, first), kSchema, attempt, first);
  }

  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

  // Closes the writer and then, per `mode`, leaves the file readable (0), truncated (1) or garbage (2).
  void end_segment(std::unique_ptr<io::MetricsSegmentWriter>& w, const std::vector<std::int64_t>& train_steps,
                   const std::vector<std::int64_t>& eval_steps, int mode) {
    const fs::path path = w->path();
    w->close();
    w.reset();
    if (mode == 0) {
      expect_used.insert(path);
      return;
    }
    expect_skipped.insert(path);
    const std::string full = read_whole_file(path);
    write_whole_file(path, mode == 1 ? full.substr(0, full.size() / 3) : std::string(full.size(), '\x01'));
    for (auto s : train_steps) model.train.erase(s);
    for (auto s : eval_steps) model.eval.erase(s);
  }

  void run() {
    bool finished = false;
    for (int attempt = 1; attempt <= 8 && !finished; ++attempt) {
      // Resume point: newest of the two retained commits whose state is intact.
      std::optional<std::int64_t> resume;
      for (auto it = committed.rbegin(); it != committed.rend(); ++it)
        if (damaged.count(*it) == 0) {
          resume = *it;
          break;
        }
      const std::int64_t first = resume ? *resume + 1 : 0;
      deep_restart = deep_restart || first < max_first_step;
      model.truncate(first);
      const bool crashes = attempt < 8 && chance(0.7);
      const std::int64_t crash_at =
          crashes ? std::uniform_int_distribution<std::int64_t>(std::max<std::int64_t>(first, 1), total)(rng) : -1;

      auto w = open_segment(attempt, first);
      std::vector<std::int64_t> seg_train, seg_eval;
      auto log_eval = [&](std::int64_t s) {
        w->append_eval(eval_row(s, attempt));
        model.eval[s] = attempt;
        seg_eval.push_back(s);
      };
      if (first == 0) log_eval(0);
      bool crashed = false;
      for (std::int64_t s = std::max<std::int64_t>(first, 1); s <= total && !crashed; ++s) {
        if (s == crash_at) {  // killed before step s: the open segment is readable or damaged
          end_segment(w, seg_train, seg_eval, std::uniform_int_distribution<int>(0, 2)(rng));
          crashed = true;
          break;
        }
        w->append_train(train_row(s, attempt));
        model.train[s] = attempt;
        seg_train.push_back(s);
        if (s % E == 0 || s == total) log_eval(s);
        if (s % K == 0 && s < total) {
          end_segment(w, seg_train, seg_eval, 0);
          seg_train.clear();
          seg_eval.clear();
          if (chance(0.1)) {  // died before COMMIT
            crashed = true;
            break;
          }
          if (chance(0.1)) {  // next segment opened, then died before COMMIT
            w = open_segment(attempt, s + 1);
            end_segment(w, {}, {}, std::uniform_int_distribution<int>(0, 2)(rng));
            crashed = true;
            break;
          }
          committed.insert(s);  // a re-saved step replaces the earlier checkpoint of that step
          damaged.erase(s);
          if (chance(0.15)) damaged.insert(s);
          while (committed.size() > 2) committed.erase(committed.begin());
          w = open_segment(attempt, s + 1);
        }
      }
      if (!crashed) {
        end_segment(w, seg_train, seg_eval, 0);
        finished = true;
      }
    }
  }
};

}  // namespace

TEST_CASE("consolidation matches the timeline model on random crash histories", "[results]") {
  int histories_with_skips = 0, deep_restarts = 0;
  for (unsigned seed = 1; seed <= 40; ++seed) {
    TempDir trial;
    Simulation sim(seed, trial.path());
    sim.run();
    const auto report = io::write_result(trial.path(), info(), summary());
    INFO("seed " << seed);
    REQUIRE(as_set(report.used) == sim.expect_used);
    REQUIRE(as_set(report.skipped_unreadable) == sim.expect_skipped);
    const std::vector<std::pair<std::int64_t, int>> train_expected(sim.model.train.begin(), sim.model.train.end());
    const std::vector<std::pair<std::int64_t, int>> eval_expected(sim.model.eval.begin(), sim.model.eval.end());
    REQUIRE(train_of(trial / "result.h5") == train_expected);
    REQUIRE(eval_of(trial / "result.h5") == eval_expected);
    histories_with_skips += !sim.expect_skipped.empty();
    deep_restarts += sim.deep_restart;
  }
  // The histories must exercise the interesting cases, or the comparison proves little: damaged
  // segments, and restarts below the first_step of an earlier segment that is not the last one
  // (where cutting only at the next segment's first_step would duplicate steps).
  INFO("histories with skipped segments: " << histories_with_skips << ", with deep restarts: " << deep_restarts);
  REQUIRE(histories_with_skips >= 5);
  REQUIRE(deep_restarts >= 5);
}

TEST_CASE("quarantine: unreadable segments are moved aside and the consolidation is unchanged", "[results]") {
  // Same damage as above: a truncated crash tail (seg-1-101), a garbage tail (seg-2-151), and a
  // readable file whose attributes contradict its name (seg-4-5).
  TempDir trial;
  const auto s10 = write_segment(trial.path(), 1, 0, 1, 100, {0, 100});
  const auto s11 = write_segment(trial.path(), 1, 101, 101, 180, {150});
  const std::string full = read_whole_file(s11);
  write_whole_file(s11, full.substr(0, full.size() / 2));
  const auto s21 = write_segment(trial.path(), 2, 101, 101, 150, {150});
  const auto s22 = segment_path(trial.path(), 2, 151);
  write_whole_file(s22, std::string(3000, '\x5a'));
  const auto s31 = write_segment(trial.path(), 3, 151, 151, 200, {200});
  const auto renamed = segment_path(trial.path(), 4, 5);
  fs::copy_file(s10, renamed);

  io::write_result(trial.path(), info(), summary("FAILED"));
  const auto before = train_of(trial / "result.h5");
  const auto before_eval = eval_of(trial / "result.h5");
  REQUIRE(before == span_of(1, 4, 1));  // seg-4-5 cuts at 5, as documented

  const auto moved = io::quarantine_unreadable_segments(trial.path());
  REQUIRE(moved.size() == 3);
  std::set<std::string> originals;
  for (const auto& p : moved) {
    REQUIRE(p.parent_path() == trial / "quarantine");
    REQUIRE(fs::file_size(p) > 0);  // kept, never deleted
    originals.insert(p.filename().string().substr(0, p.filename().string().find(".h5") + 3));
  }
  REQUIRE(originals == std::set<std::string>{"seg-1-101.h5", "seg-2-151.h5", "seg-4-5.h5"});
  for (const auto& p : {s11, s22, renamed}) {
    REQUIRE_FALSE(fs::exists(p));
    REQUIRE(fs::exists(fs::path(p.string() + ".quarantined")));
  }
  REQUIRE(io::quarantine_unreadable_segments(trial.path()).empty());  // the good ones stay

  // The markers keep the consolidation rule: the same rows as before the move.
  const auto report = io::write_result(trial.path(), info(), summary("FAILED"));
  REQUIRE(as_set(report.used) == std::set<fs::path>{s10, s21, s31});
  REQUIRE(report.skipped_unreadable.empty());
  REQUIRE(train_of(trial / "result.h5") == before);
  REQUIRE(eval_of(trial / "result.h5") == before_eval);
  fs::remove(fs::path(renamed.string() + ".quarantined"));
  io::write_result(trial.path(), info(), summary("FAILED"));
  REQUIRE(train_of(trial / "result.h5") ==
          concat(concat(span_of(1, 100, 1), span_of(101, 150, 2)), span_of(151, 200, 3)));
}

TEST_CASE("quarantine: move_to_quarantine keeps every copy under a distinct name", "[results]") {
  TempDir trial;
  std::set<fs::path> targets;
  for (int i = 0; i < 3; ++i) {
    write_whole_file(trial / "result.h5", "damaged " + std::to_string(i));
    const fs::path t = io::move_to_quarantine(trial / "result.h5", trial.path());
    REQUIRE(read_whole_file(t) == "damaged " + std::to_string(i));
    targets.insert(t);
  }
  REQUIRE(targets.size() == 3);
  REQUIRE_FALSE(fs::exists(trial / "result.h5"));
}
