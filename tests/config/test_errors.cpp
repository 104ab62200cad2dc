// Golden error cases: each bad config must fail with exactly these `file:line:col: key.path:
// message` errors. Lines and columns are counted by hand from the YAML text (1-based), at the
// offending key (unknown, duplicate, inapplicable keys) or value (type, domain, conflicts).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config_test_util.hpp"
#include "core/config/loader.hpp"

using expt::config::ConfigError;
using expt::config::ConfigErrors;
using expt::config::parse_trial_config;
using expt::config::test::check_errors;
using expt::config::test::errors_of;
using expt::config::test::ExpectedError;

namespace {

struct GoldenCase {
  std::string name;
  std::string yaml;
  std::vector<ExpectedError> expected;
};

const std::string F = "bad.yaml";

const std::vector<GoldenCase>& golden_cases() {
  static const std::vector<GoldenCase> cases = {
      {"tab used for indentation", "seed: 1\n\tmodel: 2\n", {{F, 2, 1, "", "YAML syntax error: illegal tab"}}},
      {"duplicate top-level key",
       "seed: 1\nseed: 2\n",
       {{F, 2, 1, "seed", "duplicate key 'seed' (first given at line 1, column 1)"}}},
      {"duplicate key two levels down",
       "model:\n  mixer:\n    heads: 2\n    heads: 4\n",
       {{F, 4, 5, "model.mixer.heads", "duplicate key 'heads' (first given at line 3, column 5)"}}},
      {"duplicate key in a flow mapping",
       "optimizer: {lr: 1.0e-3, lr: 2.0e-3}\n",
       {{F, 1, 25, "optimizer.lr", "duplicate key 'lr' (first given at line 1, column 13)"}}},
      {"unknown top-level key with a suggestion",
       "sed: 3\n",
       {{F, 1, 1, "sed", "unknown key 'sed'; did you mean 'seed'?"}}},
      {"unknown nested key with a suggestion",
       "optimizer:\n  lrr: 0.1\n",
       {{F, 2, 3, "optimizer.lrr", "unknown key 'lrr'; did you mean 'lr'?"}}},
      {"swapped letters suggest the key",
       "schedule:\n  wramup: 10\n",
       {{F, 2, 3, "schedule.wramup", "did you mean 'warmup'?"}}},
      {"unknown key far from any: the valid keys are listed",
       "train:\n  foo: 1\n",
       {{F, 2, 3, "train.foo", "unknown key 'foo'; valid keys here: steps, batch_size, ranks"}}},
      {"integer given as 1.5",
       "train:\n  steps: 1.5\n",
       {{F, 2, 10, "train.steps", "expected an integer, got a float (1.5)"}}},
      {"integer given as a word",
       "train:\n  batch_size: abc\n",
       {{F, 2, 15, "train.batch_size", "expected an integer, got a string (abc)"}}},
      {"quoted number where a number is expected",
       "optimizer:\n  lr: \"3e-4\"\n",
       {{F, 2, 7, "optimizer.lr", "expected a number, got a string"}}},
      {"yes is not a boolean here",
       "model:\n  tie_embeddings: yes\n",
       {{F, 2, 19, "model.tie_embeddings", "expected a boolean (true or false), got a string (yes)"}}},
      {"missing value", "train:\n  steps:\n", {{F, 2, 3, "train.steps", "expected an integer, got null"}}},
      {"integer below its domain", "model:\n  d_model: 0\n", {{F, 2, 12, "model.d_model", "must be >= 1, got 0"}}},
      {"float outside [0, 1)",
       "optimizer:\n  beta2: 1.0\n",
       {{F, 2, 10, "optimizer.beta2", "must be in [0, 1), got 1"}}},
      {"infinite learning rate", "optimizer:\n  lr: .inf\n", {{F, 2, 7, "optimizer.lr", "must be a finite number"}}},
      {"negative seed", "seed: -1\n", {{F, 1, 7, "seed", "must be in [0, 2^63), got -1"}}},
      {"seed of 2^63", "seed: 9223372036854775808\n", {{F, 1, 7, "seed", "is out of range (must be [0, 2^63))"}}},
      {"integer too large for a 32-bit key",
       "train:\n  batch_size: 3000000000\n",
       {{F, 2, 15, "train.batch_size", "must be at most 2147483647"}}},
      {"misspelt enum value",
       "schedule:\n  type: cosin\n",
       {{F, 2, 9, "schedule.type", "'cosin' is not one of constant, cosine, wsd, linear; did you mean 'cosine'?"}}},
      {"misspelt optimizer option",
       "optimizer:\n  eps_mode: pytorch\n",
       {{F, 2, 13, "optimizer.eps_mode", "'pytorch' is not one of torch, hf"}}},
      {"unknown Newton-Schulz method",
       "optimizer:\n  type: muon\n  ns_method: fast\n",
       {{F, 3, 14, "optimizer.ns_method", "'fast' is not one of gram, standard"}}},
      {"empty glob in adam_patterns",
       "optimizer: {type: muon, adam_patterns: \"a,,b\"}\n",
       {{F, 1, 40, "optimizer.adam_patterns", "empty pattern in 'a,,b'"}}},
      {"cyclic group of order 1",
       "task:\n  group: Z1\n",
       {{F, 2, 10, "task.group", "cyclic group order must be in [2, 1000], got 1"}}},
      {"unknown group", "task:\n  group: S6\n", {{F, 2, 10, "task.group", "'S6' is not a known group"}}},
      {"empty output directory", "out: \"\"\n", {{F, 1, 6, "out", "must not be empty"}}},
      {"wsd key under cosine",
       "schedule:\n  type: cosine\n  decay: 0.3\n",
       {{F, 3, 3, "schedule.decay", "key 'decay' does not apply to schedule.type 'cosine' (only to wsd)"}}},
      {"min_lr_ratio under the default constant schedule",
       "schedule:\n  min_lr_ratio: 0.1\n",
       {{F, 2, 3, "schedule.min_lr_ratio", "does not apply to schedule.type 'constant'"}}},
      {"swiglu key without an MLP",
       "model:\n  mlp:\n    type: none\n    intermediate_size: 128\n",
       {{F, 4, 5, "model.mlp.intermediate_size", "does not apply to model.mlp.type 'none'"}}},
      {"warmup of 1.5 steps",
       "schedule:\n  warmup: 1.5\n",
       {{F, 2, 11, "schedule.warmup", "neither a fraction of train.steps in [0, 1) nor a whole number of steps"}}},
      {"warmup longer than training",
       "schedule:\n  warmup: 200\ntrain:\n  steps: 100\n",
       {{F, 2, 11, "schedule.warmup", "warmup of 200 steps exceeds train.steps (100)"}}},
      {"wsd warmup plus decay longer than training",
       "schedule:\n  type: wsd\n  warmup: 0.5\n  decay: 0.6\n",
       {{F, 4, 10, "schedule.decay", "plus the wsd decay"}}},
      {"batch not divisible by ranks",
       "train:\n  batch_size: 30\n  ranks: 4\n",
       {{F, 2, 15, "train.batch_size", "train.batch_size 30 is not divisible by train.ranks 4"}}},
      {"d_model not divisible by the default heads",
       "model:\n  d_model: 30\n",
       {{F, 2, 12, "model.d_model", "model.d_model 30 is not divisible by model.mixer.heads 4"}}},
      {"odd head dimension",
       "model:\n  d_model: 20\n  mixer: {heads: 4}\n",
       {{F, 3, 18, "model.mixer.heads", "head dimension model.d_model / model.mixer.heads = 5 must be even"}}},
      {"hybrid layer beyond n_layers",
       "model:\n  n_layers: 2\n  hybrid_mixer: {type: base_conv}\n  hybrid_layers: [0, 2]\n",
       {{F, 4, 22, "model.hybrid_layers[1]", "hybrid layer 2 does not exist (model.n_layers is 2)"}}},
      {"hybrid layer listed twice",
       "model:\n  hybrid_layers: [1, 1]\n",
       {{F, 2, 22, "model.hybrid_layers[1]", "hybrid layer 1 is listed twice"}}},
      {"hybrid mixer's head split, reported at its own keys",
       "model:\n  d_model: 20\n  mixer: {heads: 2}\n  hybrid_mixer: {type: attention, heads: 4}\n"
       "  hybrid_layers: [0]\n",
       {{F, 4, 42, "model.hybrid_mixer.heads",
         "head dimension model.d_model / model.hybrid_mixer.heads = 5 must be even"}}},
      {"a key the hybrid mixer's type does not have",
       "model:\n  hybrid_mixer: {type: base_conv, heads: 2}\n",
       {{F, 2, 35, "model.hybrid_mixer.heads", "does not apply to model.hybrid_mixer.type 'base_conv'"}}},
      {"eval length shorter than the training length",
       "task:\n  seq_len: 16\n  eval_lengths: [16, 8]\n",
       {{F, 3, 22, "task.eval_lengths[1]", "eval length 8 is shorter than task.seq_len (16)"}}},
      {"eval length listed twice",
       "task:\n  eval_lengths: [32, 64, 32]\n",
       {{F, 2, 26, "task.eval_lengths[2]", "eval length 32 is listed twice"}}},
      {"eval_lengths not a list",
       "task:\n  eval_lengths: 64\n",
       {{F, 2, 17, "task.eval_lengths", "expected a list of integers, got an integer (64)"}}},
      {"section given a scalar", "model: 5\n", {{F, 1, 8, "model", "expected a mapping, got an integer (5)"}}},
      {"top level is a list", "- seed\n- model\n", {{F, 1, 1, "", "the top level must be a mapping of keys"}}},
      {"two documents",
       "seed: 1\n---\nseed: 2\n",
       {{F, 2, 1, "", "a config holds one YAML document; a second one starts here"}}},
      {"a list as a mapping key", "? [a, b]\n: 1\n", {{F, 1, 3, "", "a mapping key must be a scalar, got a list"}}},
  };
  return cases;
}

}  // namespace

TEST_CASE("golden error cases: file, line, column, key path and message", "[config][errors]") {
  REQUIRE(golden_cases().size() >= 20);
  for (const GoldenCase& c : golden_cases()) {
    INFO("case: " << c.name << "\n" << c.yaml);
    check_errors(errors_of(c.yaml), c.expected);
  }
}

TEST_CASE("duplicate keys are found at every nesting level, and the first value is kept out of the result",
          "[config][errors]") {
  const std::string yaml =
      "seed: 1\n"                      // 1
      "model:\n"                       // 2
      "  d_model: 32\n"                // 3
      "  mixer:\n"                     // 4
      "    heads: 2\n"                 // 5
      "    heads: 4\n"                 // 6  duplicate, level 3
      "  d_model: 64\n"                // 7  duplicate, level 2
      "train: {steps: 5, steps: 6}\n"  // 8  duplicate in flow style
      "seed: 2\n";                     // 9  duplicate, level 1
  check_errors(errors_of(yaml),
               {
                   {F, 6, 5, "model.mixer.heads", "duplicate key 'heads' (first given at line 5, column 5)"},
                   {F, 7, 3, "model.d_model", "duplicate key 'd_model' (first given at line 3, column 3)"},
                   {F, 8, 19, "train.steps", "duplicate key 'steps' (first given at line 8, column 9)"},
                   {F, 9, 1, "seed", "duplicate key 'seed' (first given at line 1, column 1)"},
               });
}

TEST_CASE("all errors of a file are reported together, sorted by position", "[config][errors]") {
  // Errors found in different passes (keys, values, conflicts) and written out of order on
  // purpose: the conflict on line 2 is found last but must come first.
  const std::string yaml =
      "train:\n"                                // 1
      "  batch_size: 30\n"                      // 2  not divisible by ranks (conflict)
      "  ranks: 4\n"                            // 3
      "  steps: 1.5\n"                          // 4  type
      "optimizer:\n"                            // 5
      "  beta1: -0.1\n"                         // 6  domain
      "  lrr: 1\n"                              // 7  unknown
      "schedule: {type: cosine, decay: 0.5}\n"  // 8 inapplicable
      "seed: 1\n"                               // 9
      "seed: 2\n";                              // 10 duplicate
  check_errors(errors_of(yaml), {
                                    {F, 2, 15, "train.batch_size", "not divisible by train.ranks 4"},
                                    {F, 4, 10, "train.steps", "expected an integer"},
                                    {F, 6, 10, "optimizer.beta1", "must be in [0, 1), got -0.1"},
                                    {F, 7, 3, "optimizer.lrr", "did you mean 'lr'?"},
                                    {F, 8, 26, "schedule.decay", "does not apply to schedule.type 'cosine'"},
                                    {F, 10, 1, "seed", "duplicate key 'seed'"},
                                });
}

TEST_CASE("an invalid type does not bury its error under 'does not apply' errors", "[config][errors]") {
  check_errors(errors_of("schedule:\n  type: wds\n  decay: 0.5\n  min_lr_ratio: 0.1\n"),
               {{F, 2, 9, "schedule.type", "did you mean 'wsd'?"}});
}

TEST_CASE("a conflict whose keys already failed is not reported again", "[config][errors]") {
  // heads: 0 is out of its domain; "30 is not divisible by 0" would be noise (and a division by 0).
  check_errors(errors_of("model:\n  d_model: 30\n  mixer: {heads: 0}\n"),
               {{F, 3, 18, "model.mixer.heads", "must be >= 1, got 0"}});
}

TEST_CASE("ConfigError::str and ConfigErrors::what give file:line:col: key.path: message", "[config][errors]") {
  const ConfigError e{"a.yaml", 3, 7, "model.d_model", "must be >= 1, got 0"};
  CHECK(e.str() == "a.yaml:3:7: model.d_model: must be >= 1, got 0");
  const ConfigError no_key{"a.yaml", 2, 1, "", "YAML syntax error: illegal tab"};
  CHECK(no_key.str() == "a.yaml:2:1: YAML syntax error: illegal tab");
  const ConfigError whole_file{"a.yaml", 0, 0, "", "cannot open the config file"};
  CHECK(whole_file.str() == "a.yaml: cannot open the config file");
  const ConfigErrors all({e, no_key});
  CHECK(std::string(all.what()) == e.str() + "\n" + no_key.str());
  CHECK(all.errors().size() == 2);
}

TEST_CASE("load_trial_config: unreadable paths are errors at line 0, files load like text", "[config][errors]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("expt_config_test_load_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string missing = (dir / "missing.yaml").string();
  std::filesystem::remove(missing);
  try {
    expt::config::load_trial_config(missing);
    FAIL("a missing file loaded");
  } catch (const ConfigErrors& e) {
    REQUIRE(e.errors().size() == 1);
    CHECK(e.errors()[0].file == missing);
    CHECK(e.errors()[0].line == 0);
    CHECK(e.errors()[0].col == 0);
    CHECK_THAT(e.errors()[0].message, Catch::Matchers::Contains("cannot open"));
  }
  try {
    expt::config::load_trial_config(dir.string());
    FAIL("a directory loaded");
  } catch (const ConfigErrors& e) {
    REQUIRE(e.errors().size() == 1);
    CHECK(e.errors()[0].line == 0);
    CHECK_THAT(e.errors()[0].message, Catch::Matchers::Contains("is a directory"));
  }
  const std::string bad = (dir / "bad.yaml").string();
  std::ofstream(bad) << "train:\n  steps: 0\n";
  try {
    expt::config::load_trial_config(bad);
    FAIL("an invalid file loaded");
  } catch (const ConfigErrors& e) {
    check_errors(e.errors(), {{bad, 2, 10, "train.steps", "must be >= 1, got 0"}});
  }
  const std::string good = (dir / "good.yaml").string();
  std::ofstream(good) << "train:\n  steps: 7\n";
  CHECK(expt::config::load_trial_config(good).train.steps == 7);
  std::filesystem::remove_all(dir);
}

TEST_CASE("empty and comment-only files are valid and give every default", "[config][errors]") {
  const expt::config::TrialConfig defaults;
  for (const std::string text : {"", "\n\n", "# nothing here\n", "---\n", "seed: 0\n"}) {
    INFO("text: '" << text << "'");
    expt::config::test::check_same_config(parse_trial_config(text, "empty.yaml"), defaults);
  }
}

TEST_CASE("the quickstart example config is valid", "[config][errors]") {
  const std::string path = std::string(EXPT_SOURCE_DIR) + "/configs/quickstart.yaml";
  CHECK_NOTHROW(expt::config::load_trial_config(path));
}
