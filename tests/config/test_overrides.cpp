// `--set key.path=value` overrides: applied after the file, validated like it, errors at
// `--set:1:<col>` where col is the 1-based column of the value inside the override string.
#include <catch2/catch.hpp>

#include "config_test_util.hpp"
#include "core/config/loader.hpp"

using expt::config::parse_trial_config;
using expt::config::TrialConfig;
using expt::config::test::check_errors;
using expt::config::test::errors_of;

namespace {

const std::string base =
    "model:\n"
    "  d_model: 64\n"
    "  mixer: {type: attention, heads: 4, rope_base: 500.0}\n"
    "schedule:\n"
    "  type: cosine\n"
    "  warmup: 200\n"
    "train:\n"
    "  steps: 300\n";

}  // namespace

TEST_CASE("overrides replace scalars, lists and merge mappings", "[config][overrides]") {
  const TrialConfig cfg = parse_trial_config(
      base, "base.yaml",
      {"train.steps=1000", "optimizer.lr=3e-4", "task.eval_lengths=[32, 64]", "model.mixer={heads: 8}",
       "model.tie_embeddings=true", "out=runs/x y", "train.steps=2000", "seed=42"});
  CHECK(cfg.train.steps == 2000);  // the later override wins
  CHECK(cfg.optimizer.lr == 3e-4);
  CHECK(cfg.task.eval_lengths == std::vector<int>{32, 64});
  CHECK(cfg.model.mixer.heads == 8);
  CHECK(cfg.model.mixer.rope_base == 500.0);  // merged, not replaced: the file's key survives
  CHECK(cfg.model.mixer.type == "attention");
  CHECK(cfg.model.tie_embeddings);
  CHECK(cfg.out == "runs/x y");
  CHECK(cfg.seed == 42);
  CHECK(cfg.schedule.warmup == 200.0);  // untouched keys keep the file's values
}

TEST_CASE("an override can change a type and add the keys of the new type", "[config][overrides]") {
  const TrialConfig cfg = parse_trial_config(base, "base.yaml", {"schedule.type=wsd", "schedule.decay=0.25"});
  CHECK(cfg.schedule.type == "wsd");
  CHECK(cfg.schedule.decay == 0.25);
}

TEST_CASE("overrides apply to an empty file and can resolve a conflict of the file", "[config][overrides]") {
  CHECK(parse_trial_config("", "empty.yaml", {"model.mixer.heads=2"}).model.mixer.heads == 2);
  const std::string conflicting = "schedule: {warmup: 500}\ntrain: {steps: 100}\n";
  CHECK_FALSE(errors_of(conflicting).empty());
  CHECK(parse_trial_config(conflicting, "c.yaml", {"train.steps=1000"}).train.steps == 1000);
}

TEST_CASE("bad overrides: errors point at --set:1:<value column> with the key path", "[config][overrides]") {
  SECTION("wrong type") {
    // "train.steps=" is 12 characters: the value starts in column 13.
    check_errors(errors_of(base, {"train.steps=1.5"}), {{"--set", 1, 13, "train.steps", "expected an integer"}});
  }
  SECTION("quoted number") {
    check_errors(errors_of(base, {"optimizer.lr=\"0.1\""}),
                 {{"--set", 1, 14, "optimizer.lr", "expected a number, got a string"}});
  }
  SECTION("unknown key gets a suggestion") {
    check_errors(errors_of(base, {"optimizer.lrr=0.1"}),
                 {{"--set", 1, 15, "optimizer.lrr", "unknown key 'lrr'; did you mean 'lr'?"}});
  }
  SECTION("unknown section gets a suggestion") {
    check_errors(errors_of(base, {"modle.d_model=32"}),
                 {{"--set", 1, 15, "modle", "unknown key 'modle'; did you mean 'model'?"}});
  }
  SECTION("out of domain") {
    check_errors(errors_of(base, {"model.n_layers=0"}), {{"--set", 1, 16, "model.n_layers", "must be >= 1, got 0"}});
  }
  SECTION("a key that does not apply to the file's type") {
    check_errors(errors_of(base, {"schedule.decay=0.3"}),
                 {{"--set", 1, 16, "schedule.decay", "key 'decay' does not apply to schedule.type 'cosine'"}});
  }
  SECTION("an element of a flow list, at its own column") {
    // value "[16, 8]" starts in column 19; the 8 is 5 characters further.
    check_errors(errors_of("task: {seq_len: 16}\n", {"task.eval_lengths=[16, 8]"}),
                 {{"--set", 1, 24, "task.eval_lengths[1]", "eval length 8 is shorter than task.seq_len (16)"}});
  }
  SECTION("a conflict involving an override is reported at the first of its keys that is given") {
    check_errors(errors_of(base, {"train.steps=100"}),
                 {{"bad.yaml", 6, 11, "schedule.warmup", "warmup of 200 steps exceeds train.steps (100)"}});
    check_errors(errors_of("train: {steps: 100}\n", {"schedule.warmup=200"}),
                 {{"--set", 1, 17, "schedule.warmup", "warmup of 200 steps exceeds train.steps (100)"}});
  }
  SECTION("duplicate keys inside a flow value") {
    // "model.mixer=" is 12 characters; the second `heads` is at offset 11 of the value.
    check_errors(errors_of(base, {"model.mixer={heads: 2, heads: 4}"}),
                 {{"--set", 1, 24, "model.mixer.heads", "duplicate key 'heads'"}});
  }
  SECTION("missing '='") {
    check_errors(errors_of(base, {"train.steps"}), {{"--set", 1, 1, "", "expected key.path=value, got 'train.steps'"}});
  }
  SECTION("empty path segment") {
    check_errors(errors_of(base, {"train..steps=3"}), {{"--set", 1, 1, "train..steps", "malformed key path"}});
  }
  SECTION("empty value") {
    check_errors(errors_of(base, {"train.steps="}), {{"--set", 1, 13, "train.steps", "expected an integer, got null"}});
  }
  SECTION("YAML syntax error in the value") {
    const auto errors = errors_of(base, {"task.eval_lengths=[1, 2"});
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].file == "--set");
    CHECK(errors[0].line == 1);
    CHECK(errors[0].col >= 19);
    CHECK_THAT(errors[0].message, Catch::Matchers::Contains("YAML syntax error"));
  }
}

TEST_CASE("errors of the file come first, then those of each override in order", "[config][overrides]") {
  check_errors(errors_of("train:\n  steps: 0\n", {"seed=-3", "model.d_model=x", "optimizer.beta1=2"}),
               {
                   {"bad.yaml", 2, 10, "train.steps", "must be >= 1"},
                   {"--set", 1, 6, "seed", "must be in [0, 2^63)"},
                   {"--set", 1, 15, "model.d_model", "expected an integer"},
                   {"--set", 1, 17, "optimizer.beta1", "must be in [0, 1)"},
               });
}
