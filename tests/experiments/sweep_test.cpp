// The one-rank sweep runner on tiny real trials: every planned trial runs once, status.json and
// sweep.h5 describe them, a rerun skips finished trials, and failing trials are retried up to
// max_attempts and then reported, never rerun.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "core/io/hdf5.hpp"
#include "experiments/cli/sweep_commands.hpp"
#include "experiments/sweep/scheduler.hpp"

namespace fs = std::filesystem;
using namespace expt;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(EXPT_BINARY_DIR) / "test-work" / "sweep" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path write_study(const fs::path& dir, int max_attempts) {
  const fs::path path = dir / "study.yaml";
  std::ofstream(path) << "study: tiny\n"
                         "base:\n"
                         "  task: {type: word_problem, group: Z3, seq_len: 8}\n"
                         "  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: "
                         "{intermediate_size: 32}}\n"
                         "  train: {steps: 6, batch_size: 4, eval_every: 3, eval_batches: 1}\n"
                         "search:\n"
                         "  strategy: grid\n"
                         "  space: {optimizer.lr: [1.0e-3, 1.0e-2], schedule.warmup: [0, 100]}\n"
                         "sweep: {max_attempts: "
                      << max_attempts << "}\n";
  return path;
}

nlohmann::json status_of(const fs::path& dir) {
  std::ifstream in(dir / "status.json");
  return nlohmann::json::parse(in);
}

int run_sweep(const fs::path& study, const fs::path& out) {
  char name[] = "expt";
  char* argv[] = {name, nullptr};
  return experiments::sweep_command(1, argv, study.string(), {}, out.string(), false);
}

}  // namespace

TEST_CASE("one-rank sweep: runs every trial once, writes the index, and resumes by skipping", "[sweep]") {
  const fs::path dir = fresh_dir("one_rank");
  const fs::path study = write_study(dir, 2);
  const fs::path out = dir / "out";
  REQUIRE(run_sweep(study, out) == 0);

  auto status = status_of(out);
  // 2 lr x {warmup 0} (warmup 100 > 6 steps is dropped): 2 trials.
  CHECK(status["counts"]["COMPLETED"] == 2);
  CHECK(status["dropped"].size() == 2);
  std::set<std::string> ids;
  for (const auto& t : status["trials"]) {
    ids.insert(t["id"].get<std::string>());
    CHECK(t["step"] == 6);
    CHECK(t["attempts"] == 1);
    CHECK(fs::exists(out / "trials" / t["id"].get<std::string>() / "result.h5"));
  }
  CHECK(ids.size() == 2);
  CHECK(fs::exists(out / "sweep.yaml"));
  CHECK(fs::exists(out / "sweep.resolved.yaml"));

  // sweep.h5: one row per trial, and the external links open the trial files.
  {
    auto file = io::h5::open_file(out / "sweep.h5");
    auto trials = io::h5::open_dataset(file, "trials");
    CHECK(io::h5::dataset_dims(trials) == std::vector<hsize_t>{2});
    auto links = io::h5::open_group(file, "trial_files");
    for (const std::string& id : ids) {
      CHECK(io::h5::link_exists(links, id));
      auto summary = io::h5::open_group(links, id + "/summary");
      CHECK(io::h5::read_string_attribute(summary, "status") == "COMPLETED");
    }
  }

  // Rerun: nothing starts again.
  REQUIRE(run_sweep(study, out) == 0);
  const auto after = status_of(out);
  for (const auto& t : after["trials"]) CHECK(t["attempts"] == 1);

  std::ostringstream table;
  CHECK(experiments::status_command(out.string(), table) == 0);
  CHECK(table.str().find("2 COMPLETED") != std::string::npos);
}

TEST_CASE("one-rank sweep: a failing trial ends only itself and is retried up to max_attempts", "[sweep]") {
  const fs::path dir = fresh_dir("failing");
  const fs::path study = write_study(dir, 2);
  const fs::path out = dir / "out";
  ::setenv("EXPT_TEST_THROW_AT_STEP", "2", 1);
  const int rc = run_sweep(study, out);
  const int rc_again = run_sweep(study, out);
  ::unsetenv("EXPT_TEST_THROW_AT_STEP");
  CHECK(rc == 1);
  CHECK(rc_again == 1);
  const auto status = status_of(out);
  CHECK(status["counts"]["FAILED"] == 2);
  for (const auto& t : status["trials"]) {
    // Two attempts in the first sweep; the rerun starts none (max_attempts reached).
    CHECK(t["attempts"] == 2);
    CHECK(t["message"].get<std::string>().find("injected failure") != std::string::npos);
  }
}

namespace {

struct RoundRow {
  std::int32_t round;
  std::uint8_t converged;
};

// (round, converged) of every row of coordinator/state.h5's /cd_rounds, read by field name into a
// packed memory type (5 bytes a row).
std::vector<RoundRow> read_rounds(const fs::path& out) {
  auto file = io::h5::open_file(out / "coordinator" / "state.h5");
  auto rounds = io::h5::open_dataset(file, "cd_rounds");
  const io::h5::CompoundField fields[] = {{"round", H5T_NATIVE_INT32}, {"converged", H5T_NATIVE_UINT8}};
  std::vector<std::size_t> off;
  const io::h5::Datatype mem = io::h5::make_compound(fields, &off);
  const std::size_t row_size = H5Tget_size(mem.id());
  const hsize_t n = io::h5::dataset_dims(rounds).at(0);
  std::vector<unsigned char> raw(row_size * n);
  io::h5::read_rows(rounds, mem.id(), raw.data(), n);
  std::vector<RoundRow> rows(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::memcpy(&rows[i].round, raw.data() + i * row_size + off[0], sizeof(std::int32_t));
    std::memcpy(&rows[i].converged, raw.data() + i * row_size + off[1], sizeof(std::uint8_t));
  }
  return rows;
}

}  // namespace

TEST_CASE("coordinate-descent sweep: coordinator state.h5 lists every round and is rewritten the same on rerun",
          "[sweep]") {
  const fs::path dir = fresh_dir("cd_state");
  const fs::path study = dir / "study.yaml";
  std::ofstream(study) << "study: tiny_cd\n"
                          "base:\n"
                          "  task: {type: word_problem, group: Z3, seq_len: 8}\n"
                          "  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: "
                          "{intermediate_size: 32}}\n"
                          "  optimizer: {lr: 1.0e-4}\n"
                          "  train: {steps: 6, batch_size: 4, eval_every: 3, eval_batches: 1}\n"
                          "search:\n"
                          "  strategy: coordinate_descent\n"
                          "  space: {optimizer.lr: [1.0e-4, 1.0e-3, 1.0e-2, 3.0e-2]}\n";
  const fs::path out = dir / "out";
  REQUIRE(run_sweep(study, out) == 0);
  const auto rows = read_rounds(out);
  REQUIRE(!rows.empty());
  // Rounds 0, 1, ... in order, only the last one converged.
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].round == static_cast<std::int32_t>(i));
    CHECK(rows[i].converged == (i + 1 == rows.size() ? 1 : 0));
  }
  const auto status = status_of(out);
  REQUIRE(status["coordinate_descent"].size() == 1);
  CHECK(status["coordinate_descent"][0]["round"] == rows.back().round);

  // A rerun runs nothing and replays the same rounds from the trials on disk.
  REQUIRE(run_sweep(study, out) == 0);
  const auto again = read_rounds(out);
  REQUIRE(again.size() == rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(again[i].round == rows[i].round);
    CHECK(again[i].converged == rows[i].converged);
  }
}
