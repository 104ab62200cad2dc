// tests/scripts/read_result.py run by Debian's python3 (h5py, numpy, PyYAML) on result files written
// by this library: it must accept a valid file and reject files that break the format's promises
// (a config float PyYAML reads as a string, duplicated steps), so that its acceptance means something.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <limits>

#include "core/io/hdf5.hpp"
#include "core/io/metrics_format.hpp"
#include "core/io/results.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
namespace io = expt::io;
namespace h5 = expt::io::h5;
using expt::io::test::read_whole_file;
using expt::io::test::TempDir;

namespace {

// Exit status of `python read_result.py file`; its output goes to `log`.
int run_reader(const fs::path& file, const fs::path& log) {
  const std::string cmd = std::string("'") + EXPT_PYTHON + "' '" + EXPT_SOURCE_DIR +
                          "/tests/scripts/read_result.py' '" + file.string() + "' > '" + log.string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

const io::EvalSchema kSchema{{"loss@6", "token_acc@6", "seq_acc@6", "loss@12", "token_acc@12", "seq_acc@12"}, {6, 12}};

void write_trial(const fs::path& trial, const std::string& config_yaml, const std::string& status) {
  {
    io::MetricsSegmentWriter w(trial / "metrics" / "seg-1-0.h5", kSchema, 1, 0);
    for (std::int64_t s = 1; s <= 60; ++s) {
      const float loss = s == 13 ? std::numeric_limits<float>::quiet_NaN() : 3.0f / static_cast<float>(s);
      w.append_train({s, s * 96, 0.01 * static_cast<double>(s), loss, 1e-3f, 1.0f, 0.01f, 4.0f,
                      static_cast<std::uint8_t>(s == 13), static_cast<std::uint8_t>(s == 13)});
      if (s % 20 == 0) {
        io::EvalRow r{
            s, s * 96, 0.5, std::vector<float>(6, 0.5f), {std::vector<float>(6, 0.9f), std::vector<float>(12, 0.4f)}};
        w.append_eval(r);
      }
    }
    w.append_event({13, 0.13, "skip_step", "non-finite loss"});
  }
  io::ResultInfo info;
  info.trial_id = info.config_hash = "feedc0ffee123456";
  info.config_yaml = config_yaml;
  info.hparams = {{"optimizer.lr", 3e-3}, {"optimizer.type", std::string("adamw")}};
  info.scale = {{"n_params", std::int64_t{1000}}};
  io::TrialSummary summary;
  summary.status = status;
  summary.final_eval_loss = status == "DIVERGED" ? std::numeric_limits<double>::infinity() : 0.05;
  summary.best_eval_loss = 0.05;
  summary.diverged_step = status == "DIVERGED" ? 61 : -1;
  summary.steps_done = 60;
  summary.tokens_seen = 60 * 96;
  summary.n_attempts = 1;
  io::write_result(trial, info, summary);
}

const char* const kGoodYaml =
    "seed: 7\n"
    "task: {type: word_problem, group: S3, seq_len: 6, eval_lengths: [6, 12]}\n"
    "optimizer: {type: adamw, lr: 3.0e-03, weight_decay: 1.0e-01, beta2: 0.95, eps: 1.0e-08}\n"
    "schedule: {type: cosine, warmup: 0.0, min_lr_ratio: .inf}\n"
    "train: {steps: 60, batch_size: 16}\n";

}  // namespace

TEST_CASE("read_result.py accepts a result.h5 written by write_result", "[script]") {
  TempDir trial;
  write_trial(trial.path(), kGoodYaml, "COMPLETED");
  const int rc = run_reader(trial / "result.h5", trial / "reader.log");
  const std::string out = read_whole_file(trial / "reader.log");
  INFO(out);
  REQUIRE(rc == 0);
  REQUIRE(out.rfind("OK ", 0) == 0);
  REQUIRE(out.find("60 train rows") != std::string::npos);

  TempDir diverged;
  write_trial(diverged.path(), kGoodYaml, "DIVERGED");
  REQUIRE(run_reader(diverged / "result.h5", diverged / "reader.log") == 0);
}

TEST_CASE("read_result.py rejects a config float that PyYAML reads as a string", "[script]") {
  TempDir trial;
  // yaml-cpp reads 1e-3 as a double; PyYAML (YAML 1.1) reads it as the string "1e-3".
  write_trial(trial.path(), "optimizer: {type: adamw, lr: 1e-3}\n", "COMPLETED");
  const int rc = run_reader(trial / "result.h5", trial / "reader.log");
  const std::string out = read_whole_file(trial / "reader.log");
  INFO(out);
  REQUIRE(rc == 1);
  REQUIRE(out.find("1e-3") != std::string::npos);
}

TEST_CASE("read_result.py rejects duplicated steps and a missing summary", "[script]") {
  TempDir trial;
  write_trial(trial.path(), kGoodYaml, "COMPLETED");
  // A copy of the valid file with one train row appended again (step 60 twice), written with the
  // low-level layer since the segment writer and write_result refuse to produce it.
  const fs::path bad = trial / "duplicated.h5";
  fs::copy_file(trial / "result.h5", bad);
  {
    h5::File f = h5::open_file(bad, /*writable=*/true);
    auto rows = io::detail::read_train(f);
    h5::Dataset train = h5::open_dataset(f, "metrics/train");
    io::detail::append_train_rows(train, std::span<const io::TrainRow>(&rows.back(), 1));
    train.close();
    f.close();
  }
  std::string out;
  REQUIRE(run_reader(bad, trial / "reader.log") == 1);
  out = read_whole_file(trial / "reader.log");
  INFO(out);
  REQUIRE(out.find("not strictly increasing") != std::string::npos);

  // A segment file is not a result file: no /summary, no /config.
  REQUIRE(run_reader(trial / "metrics" / "seg-1-0.h5", trial / "reader.log") == 1);
  out = read_whole_file(trial / "reader.log");
  REQUIRE(out.find("/summary") != std::string::npos);
}
