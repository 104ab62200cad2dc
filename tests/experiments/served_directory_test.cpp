// expt serve's reader (experiments/serve/served_directory.hpp): which directories it accepts, which
// files it serves, and the bound on its cache of curves. The HTTP side and the JSON answers over a
// real sweep are tested by tests/scripts/serve_*.sh.
#include "experiments/serve/served_directory.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/io/hdf5.hpp"
#include "core/io/metrics.hpp"
#include "core/io/sweep_index.hpp"

namespace fs = std::filesystem;
using expt::serve::ServedDirectory;

namespace {

struct TempTree {
  fs::path root;
  TempTree() {
    std::string pattern = (fs::temp_directory_path() / "expt-serve-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root = pattern;
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A trial of a sweep with `rows` train rows in two closed segments and an open-looking third.
void write_trial(const fs::path& sweep, const std::string& id, int rows) {
  const fs::path dir = sweep / "trials" / id;
  const expt::io::EvalSchema schema{{"loss@8"}, {}};
  for (int first : {0, rows / 2 + 1, rows + 1}) {
    expt::io::MetricsSegmentWriter w(dir / "metrics" / ("seg-1-" + std::to_string(first) + ".h5"), schema, 1, first);
    const int last = first == 0 ? rows / 2 : rows;
    for (int s = std::max(first, 1); s <= last && first <= rows; ++s)
      w.append_train({s, s * 10, 0.1 * s, 1.0f / static_cast<float>(s), 1e-3f, 1, 1, 1, 0, 0});
    w.close();
  }
}

}  // namespace

TEST_CASE("ServedDirectory refuses what is neither a sweep nor a trial directory", "[serve]") {
  TempTree t;
  REQUIRE_THROWS_WITH(ServedDirectory(t.root / "missing"), Catch::Contains("no such directory"));
  write_file(t.root / "file", "x");
  REQUIRE_THROWS_WITH(ServedDirectory(t.root / "file"), Catch::Contains("not a directory"));
  REQUIRE_THROWS_WITH(ServedDirectory(t.root), Catch::Contains("neither a sweep directory"));
  write_file(t.root / "status.json", "{}");
  REQUIRE(ServedDirectory(t.root).kind() == ServedDirectory::Kind::sweep);
}

TEST_CASE("ServedDirectory serves only files under its directory", "[serve]") {
  TempTree t;
  write_file(t.root / "sweep" / "status.json", R"({"counts": {}, "trials": []})");
  write_file(t.root / "sweep" / "trials" / "abc" / "log.txt", "log");
  write_file(t.root / "secret.txt", "secret");
  fs::create_symlink(t.root / "secret.txt", t.root / "sweep" / "link");
  const ServedDirectory dir(t.root / "sweep");
  REQUIRE(dir.resolve_file("trials/abc/log.txt") == fs::canonical(t.root / "sweep/trials/abc/log.txt"));
  for (const char* bad : {"../secret.txt", "trials/../../secret.txt", "/etc/passwd", "./status.json", "link", "trials",
                          "", "trials\\abc", "missing.txt"})
    REQUIRE_FALSE(dir.resolve_file(bad).has_value());
}

TEST_CASE("ServedDirectory keeps its cache of curves under its byte bound", "[serve]") {
  TempTree t;
  write_file(t.root / "status.json", R"({"counts": {}, "trials": []})");
  for (const char* id : {"aa", "bb", "cc"}) write_trial(t.root, id, 400);
  const std::size_t one = ServedDirectory(t.root).metrics_json("aa", 2000)->size();
  ServedDirectory dir(t.root, one * 2 + one / 2);  // room for two answers, not three
  for (const char* id : {"aa", "bb", "cc", "aa"}) {
    const auto body = dir.metrics_json(id, 2000);
    REQUIRE(body.has_value());
    const auto j = nlohmann::json::parse(*body);
    // The two closed segments (1..200, 201..400); the third, newest one is left out.
    REQUIRE(j.at("train_rows") == 400);
    REQUIRE(j.at("left_out") == "seg-1-401.h5");
    REQUIRE(dir.metrics_cache_size() <= one * 2 + one / 2);
  }
  REQUIRE(dir.metrics_cache_size() >= one);
  REQUIRE_FALSE(dir.metrics_json("zz", 2000).has_value());     // no such trial
  REQUIRE_FALSE(dir.metrics_json("../aa", 2000).has_value());  // not an id
}

namespace {

// A sweep.h5 of `rows` whose resolved study branches (scales.branching: wsd) with the given cell
// base schedule, as the coordinator writes it (experiments/sweep/scheduler.cpp write_index).
void write_index(const fs::path& sweep, const std::vector<expt::io::SweepIndexRow>& rows, const std::string& config) {
  fs::create_directories(sweep);
  const auto file = expt::io::h5::create_file(sweep / "sweep.h5", false);
  expt::io::h5::write_string_dataset(file, "config", config);
  expt::io::write_sweep_index(file, rows);
}

expt::io::SweepIndexRow index_row(const std::string& id, const std::string& cell, std::int64_t seed, std::int64_t steps,
                                  const std::string& status, double loss) {
  expt::io::SweepIndexRow r;
  r.trial_id = id;
  r.optimizer = "adamw";
  r.seed = seed;
  r.cell = cell;
  r.model_tag = "s";
  r.point = "optimizer.lr=1.0e-02";
  r.axes = {{"optimizer.lr", 1.0e-2}};
  r.status = status;
  r.final_eval_loss = loss;
  r.steps = steps;
  return r;
}

nlohmann::json row_of(const nlohmann::json& overview, const std::string& id) {
  for (const auto& t : overview.at("trials"))
    if (t.at("id") == id) return t;
  FAIL("no row " << id);
  return {};
}

}  // namespace

TEST_CASE("ServedDirectory counts and shows any state, and every trial's role", "[serve]") {
  TempTree t;
  const fs::path sweep = t.root / "sweep";
  // One point at ratios 4, 2, 1 (a trunk and two branches), seed 2 at ratio 1 alone, seed 3 (a
  // confirmation seed) at ratio 1. The states: a successive-halving PRUNED trial without result.h5
  // and a state no expt has yet must be counted and shown as outcomes, as COMPLETED is.
  write_index(sweep,
              {index_row("000000000000000a", "adamw/s/x4", 1, 80, "COMPLETED", 2.0),
               index_row("000000000000000b", "adamw/s/x2", 1, 40, "COMPLETED", 2.1),
               index_row("000000000000000c", "adamw/s/x1", 1, 20, "pending", INFINITY),
               index_row("000000000000000d", "adamw/s/x1", 2, 20, "PRUNED", 2.5),
               index_row("000000000000000e", "adamw/s/x1", 3, 20, "BRAND_NEW_STATE", 2.6)},
              "scales:\n  branching: wsd\ncells:\n"
              "  adamw/s/x1:\n    base:\n      schedule: {type: wsd, warmup: 4, decay: 0.25}\n      out: \"\"\n"
              "  adamw/s/x2:\n    base:\n      schedule: {type: wsd, warmup: 4, decay: 0.25}\n");
  const std::string row_tail = R"(, "attempts": 1, "steps": 20, "step": null, "loss": null, "tokens_per_s": null)";
  write_file(
      sweep / "status.json",
      R"({"study": "s", "strategy": "grid", "counts": {"pending": 1, "running": 0, "COMPLETED": 2, "DIVERGED": 0},
                 "trials": [
                   {"id": "000000000000000a", "cell": "adamw/s/x4", "state": "COMPLETED", "confirmation": false)" +
          row_tail + R"(},
                   {"id": "000000000000000b", "cell": "adamw/s/x2", "state": "COMPLETED")" +
          row_tail + R"(},
                   {"id": "000000000000000c", "cell": "adamw/s/x1", "state": "pending")" +
          row_tail + R"(},
                   {"id": "000000000000000d", "cell": "adamw/s/x1", "state": "PRUNED")" +
          row_tail + R"(},
                   {"id": "000000000000000e", "cell": "adamw/s/x1", "state": "BRAND_NEW_STATE", "confirmation": true)" +
          row_tail + R"(}],
                 "coordinate_descent": [],
                 "confirmation": [{"cell": "adamw/s/x1", "ready": true, "points": ["optimizer.lr=1.0e-02"], "trials": 1, "done": 1},
                                  {"cell": "adamw/s/x2", "ready": false, "points": [], "trials": 0, "done": 0}]})");
  // The x2 branch forked at step 37 (as its attempts.jsonl says; the plan's step would be 30); the x1
  // branch has not started: its step is the plan's, 20 - round(0.25 * 20) = 15 under the cell's schedule.
  write_file(sweep / "trials" / "000000000000000b" / "attempts.jsonl",
             "{\"event\": \"start\", \"attempt\": 1}\n{\"event\": \"fork\", \"trunk\": \"000000000000000a\", "
             "\"from_step\": 37}\n{\"event\": \"end\", \"attem");  // a line being written
  write_file(sweep / "trials" / "000000000000000a" / "forks" / "step-37" / "COMMIT", "");
  fs::create_directories(sweep / "trials" / "000000000000000a" / "forks" / "step-15");  // not committed

  ServedDirectory dir(sweep);
  const auto o = nlohmann::json::parse(dir.overview_json());
  const auto& counts = o.at("counts");
  CHECK(counts.at("PRUNED") == 1);
  CHECK(counts.at("BRAND_NEW_STATE") == 1);
  CHECK(counts.at("COMPLETED") == 2);
  CHECK(counts.at("pending") == 1);
  CHECK(counts.at("DIVERGED") == 0);  // a state status.json counts, none of the rows has
  CHECK(row_of(o, "000000000000000d").at("finished") == true);
  CHECK(row_of(o, "000000000000000d").at("final_eval_loss") == 2.5);  // from sweep.h5: no result.h5
  CHECK(row_of(o, "000000000000000e").at("finished") == true);
  CHECK(row_of(o, "000000000000000c").at("finished") == false);

  CHECK(row_of(o, "000000000000000a").at("role") == "trunk of 2 branch(es)");
  CHECK(row_of(o, "000000000000000b").at("role") == "branch of 000000000000000a from step 37");
  CHECK(row_of(o, "000000000000000b").at("branch").at("forked") == true);
  CHECK(row_of(o, "000000000000000c").at("role") == "branch of 000000000000000a from step 15");
  CHECK(row_of(o, "000000000000000c").at("branch").at("forked") == false);
  CHECK(row_of(o, "000000000000000d").at("role") == "");
  CHECK(row_of(o, "000000000000000e").at("role") == "confirmation seed");
  for (const auto& c : o.at("cells")) {
    if (c.at("cell") == "adamw/s/x1")
      CHECK(c.at("confirmation").at("text") == "1/1 trial(s) done, 1 point(s): [optimizer.lr=1.0e-02]");
    if (c.at("cell") == "adamw/s/x2") CHECK(c.at("confirmation").at("text") == "waits for the search");
    if (c.at("cell") == "adamw/s/x4") CHECK_FALSE(c.contains("confirmation"));
  }

  const auto trunk = dir.trial("000000000000000a");
  REQUIRE(trunk.has_value());
  CHECK(trunk->at("role") == "trunk of 2 branch(es)");
  CHECK(trunk->at("fork_points") == nlohmann::json::array({37}));
  const auto branch = dir.trial("000000000000000b");
  REQUIRE(branch.has_value());
  CHECK(branch->at("branch").at("trunk") == "000000000000000a");
  CHECK(branch->at("branch").at("from_step") == 37);

  // A branch whose fork was skipped says so, and the overview changes with its attempts.jsonl.
  write_file(sweep / "trials" / "000000000000000c" / "attempts.jsonl",
             "{\"event\": \"fork_skipped\", \"trunk\": \"000000000000000a\", \"reason\": \"no fork point\"}\n");
  const auto o2 = nlohmann::json::parse(dir.overview_json());
  CHECK(row_of(o2, "000000000000000c").at("role") ==
        "branch of 000000000000000a from step 15, trained from scratch: no fork point");
  // One that started without a fork line (handed out before its trunk was planned) trained alone too.
  write_file(sweep / "trials" / "000000000000000c" / "attempts.jsonl", "{\"event\": \"start\", \"from_step\": 0}\n");
  const auto o3 = nlohmann::json::parse(dir.overview_json());
  CHECK(row_of(o3, "000000000000000c").at("role") ==
        "branch of 000000000000000a from step 15, trained from scratch: it started without a fork (attempts.jsonl)");
}
