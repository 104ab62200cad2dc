// The one training step: a loop over TrainingStep alone (what `expt bench` times) gives the losses
// and parameters the trainer records for the same config, and a StepWatcher sees the phases in
// order.
#include "experiments/trial/training_step.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config/loader.hpp"
#include "core/io/metrics.hpp"
#include "experiments/trial/trainer.hpp"

namespace fs = std::filesystem;
using namespace expt;

namespace {

config::TrialConfig small(const fs::path& out) {
  const std::string yaml = R"(
seed: 5
task: {type: word_problem, group: Z3, seq_len: 8}
model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
optimizer: {type: adamw, lr: 1.0e-2}
schedule: {type: cosine, warmup: 2}
train: {steps: 6, batch_size: 4, eval_every: 100, eval_batches: 1, grad_clip: 0.5}
)";
  return config::parse_trial_config(yaml, "small.yaml", {"out=" + out.string()});
}

// Records the order of the phases and callbacks of each step.
class Recorder final : public experiments::StepWatcher {
 public:
  void enter(experiments::StepPhase phase) override { events.push_back(experiments::to_string(phase)); }
  void gradient_ready(std::int64_t, const data::Batch&) override { events.push_back("gradient"); }
  void before_update(std::int64_t, double) override { events.push_back("update"); }
  std::vector<std::string> events;
};

}  // namespace

TEST_CASE("TrainingStep run alone gives the trainer's losses, norms and learning rates") {
  const fs::path dir = fs::path(EXPT_BINARY_DIR) / "test-work" / "training_step" / "same";
  fs::remove_all(dir);
  const config::TrialConfig cfg = small(dir);
  comm::LocalCommunicator local;
  experiments::TrainerOptions options;
  options.progress = experiments::ProgressMode::quiet;
  REQUIRE(experiments::run_trial(cfg, local, options).summary.status == "COMPLETED");
  const auto rows = io::read_train_rows(dir / "result.h5");
  REQUIRE(rows.size() == 6);

  experiments::TrainingStep step(cfg, local, experiments::StepOptions{});
  for (std::int64_t s = 1; s <= 6; ++s) {
    const experiments::StepResult r = step.run(s, false);
    INFO("step " << s);
    REQUIRE_FALSE(r.stopped);
    REQUIRE(r.finite);
    // The trainer stores these as float: the same step gives the same float.
    CHECK(static_cast<float>(r.loss) == rows[static_cast<std::size_t>(s - 1)].loss);
    CHECK(static_cast<float>(r.grad_norm) == rows[static_cast<std::size_t>(s - 1)].grad_norm);
    CHECK(static_cast<float>(r.lr) == rows[static_cast<std::size_t>(s - 1)].lr);
  }
}

TEST_CASE("TrainingStep reports its phases in order and stops before the forward when asked") {
  const config::TrialConfig cfg = small(fs::path(EXPT_BINARY_DIR) / "test-work" / "training_step" / "phases");
  comm::LocalCommunicator local;
  experiments::TrainingStep step(cfg, local, experiments::StepOptions{});
  Recorder rec;
  step.run(1, false, &rec);
  CHECK(rec.events ==
        std::vector<std::string>{"data", "forward", "backward", "reduce", "gradient", "optimizer", "update"});

  rec.events.clear();
  const std::vector<float> before(step.store().values().begin(), step.store().values().end());
  const experiments::StepResult stopped = step.run(2, true, &rec);
  CHECK(stopped.stopped);
  CHECK(rec.events == std::vector<std::string>{"data"});
  CHECK(std::vector<float>(step.store().values().begin(), step.store().values().end()) == before);
}

TEST_CASE("TrainingStep does not update on a non-finite loss") {
  const config::TrialConfig cfg = small(fs::path(EXPT_BINARY_DIR) / "test-work" / "training_step" / "nan");
  comm::LocalCommunicator local;
  experiments::StepOptions options;
  options.nan_at_step = 1;
  experiments::TrainingStep step(cfg, local, options);
  Recorder rec;
  const std::vector<float> before(step.store().values().begin(), step.store().values().end());
  const experiments::StepResult r = step.run(1, false, &rec);
  CHECK_FALSE(r.finite);
  CHECK(rec.events.back() == "optimizer");  // clipped, then stopped before the update
  CHECK(std::vector<float>(step.store().values().begin(), step.store().values().end()) == before);
}
