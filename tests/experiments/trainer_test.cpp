// Trainer behaviour on tiny trials: statuses (COMPLETED, DIVERGED, FAILED), resume from a
// checkpoint, refusal to mix trials in one directory, and the one-run-per-directory lock.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/config/loader.hpp"
#include "core/io/metrics.hpp"
#include "core/io/results.hpp"
#include "experiments/trial/trainer.hpp"

namespace fs = std::filesystem;
using namespace expt;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(EXPT_BINARY_DIR) / "test-work" / "trainer" / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

config::TrialConfig tiny(const fs::path& out) {
  const std::string yaml = R"(
seed: 3
task: {type: word_problem, group: Z3, seq_len: 8}
model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
optimizer: {type: adamw, lr: 1.0e-2}
train: {steps: 12, batch_size: 4, eval_every: 4, eval_batches: 1, checkpoint_every: 4}
)";
  auto cfg = config::parse_trial_config(yaml, "tiny.yaml", {"out=" + out.string()});
  return cfg;
}

experiments::TrainerOptions quiet(experiments::TrainerHooks hooks = {}) {
  experiments::TrainerOptions o;
  o.progress = experiments::ProgressMode::quiet;
  o.hooks = hooks;
  return o;
}

}  // namespace

TEST_CASE("a tiny trial completes and writes every step once") {
  const auto dir = fresh_dir("complete");
  comm::LocalCommunicator local;
  const auto outcome = experiments::run_trial(tiny(dir), local, quiet());
  CHECK(outcome.summary.status == "COMPLETED");
  CHECK(std::isfinite(outcome.summary.final_eval_loss));
  const auto rows = io::read_train_rows(dir / "result.h5");
  REQUIRE(rows.size() == 12);
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].step == static_cast<std::int64_t>(i + 1));
  io::EvalSchema schema;
  const auto evals = io::read_eval_rows(dir / "result.h5", &schema);
  REQUIRE(evals.size() == 4);  // steps 0, 4, 8, 12
  CHECK(evals.front().step == 0);
  CHECK(evals.back().step == 12);
  CHECK(io::read_summary(dir / "result.h5").status == "COMPLETED");
  // Hyperparameters are typed attributes: floats bit-exact doubles, integers int64, strings text.
  const auto hp = io::read_attribute_group(dir / "result.h5", "hparams");
  const auto find = [&](const std::string& key) {
    for (const auto& [k, v] : hp)
      if (k == key) return v;
    FAIL("no hparam " << key);
    return io::AttributeValue{};
  };
  CHECK(std::get<double>(find("optimizer.lr")) == 1e-2);
  CHECK(std::get<std::int64_t>(find("train.steps")) == 12);
  CHECK(std::get<std::string>(find("task.group")) == "Z3");
  // Rerun: recognised as finished, nothing trained.
  const auto again = experiments::run_trial(tiny(dir), local, quiet());
  CHECK(again.already_finished);
}

TEST_CASE("a non-finite loss ends the trial as DIVERGED with the step and loss +inf") {
  const auto dir = fresh_dir("diverged");
  comm::LocalCommunicator local;
  experiments::TrainerHooks hooks;
  hooks.nan_at_step = 6;
  const auto outcome = experiments::run_trial(tiny(dir), local, quiet(hooks));
  CHECK(outcome.summary.status == "DIVERGED");
  CHECK(outcome.summary.diverged_step == 6);
  const auto s = io::read_summary(dir / "result.h5");
  CHECK(s.status == "DIVERGED");
  CHECK(s.diverged_step == 6);
  CHECK(std::isinf(s.final_eval_loss));
  CHECK(s.final_eval_loss > 0);
  const auto rows = io::read_train_rows(dir / "result.h5");
  REQUIRE(rows.size() == 6);
  CHECK(rows.back().nonfinite == 1);
}

TEST_CASE("an exception inside a trial ends it as FAILED with the message") {
  const auto dir = fresh_dir("failed");
  comm::LocalCommunicator local;
  experiments::TrainerHooks hooks;
  hooks.throw_at_step = 7;
  const auto outcome = experiments::run_trial(tiny(dir), local, quiet(hooks));
  CHECK(outcome.summary.status == "FAILED");
  CHECK(outcome.summary.message.find("injected failure at step 7") != std::string::npos);
  const auto s = io::read_summary(dir / "result.h5");
  CHECK(s.status == "FAILED");
  CHECK(s.message.find("injected failure") != std::string::npos);
  std::ifstream log(dir / "log.txt");
  const std::string text((std::istreambuf_iterator<char>(log)), {});
  CHECK(text.find("FAILED") != std::string::npos);
  // Retried without the fault: resumes from the checkpoint at step 4 and completes.
  const auto retry = experiments::run_trial(tiny(dir), local, quiet());
  CHECK(retry.summary.status == "COMPLETED");
  CHECK(io::read_train_rows(dir / "result.h5").size() == 12);
}

TEST_CASE("a directory that holds another trial is refused") {
  const auto dir = fresh_dir("mixed");
  comm::LocalCommunicator local;
  experiments::run_trial(tiny(dir), local, quiet());
  auto other = tiny(dir);
  other.optimizer.lr = 5e-3;
  CHECK_THROWS_WITH(experiments::run_trial(other, local, quiet()),
                    Catch::Matchers::Contains("different config"));
}
