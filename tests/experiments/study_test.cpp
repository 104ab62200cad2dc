// Study files: a valid study reads into the expected structure, and each kind of mistake is
// reported at its line and column in the study file.
#include "experiments/study/study.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>

#include "core/config/config_error.hpp"
#include "experiments/study/plan.hpp"
#include "tests/experiments/study_errors.hpp"

using namespace expt;

namespace {

std::vector<std::string> errors_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  return test::study_errors(text, sets);
}
using test::has_error;

std::string joined(const std::vector<std::string>& errors) {
  std::string s;
  for (const auto& e : errors) s += e + "\n";
  return s;
}

const char* kValid = R"(study: demo
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}}
  train: {steps: 20, batch_size: 4}
search:
  strategy: grid
  seeds: [1, 2]
  space:
    schedule.warmup: [0, 5]
  optimizers:
    adamw:
      base: {weight_decay: 0.1}
      space:
        optimizer.lr: {min: 1.0e-3, max: 1.0e-1, num: 3, log: true}
        optimizer.one_minus_beta1: [0.1, 0.05]
sweep: {ranks_per_trial: 1, max_attempts: 3}
)";

}  // namespace

TEST_CASE("a valid study reads into its parts", "[study]") {
  const auto s = experiments::parse_study(kValid, "study.yaml");
  CHECK(s.name == "demo");
  CHECK(s.strategy == experiments::Strategy::grid);
  CHECK(s.seeds == std::vector<std::uint64_t>{1, 2});
  CHECK(s.max_attempts == 3);
  REQUIRE(s.optimizers.size() == 1);
  const auto& axes = s.optimizers[0].axes;
  REQUIRE(axes.size() == 3);
  CHECK(axes[0].key == "schedule.warmup");  // study-wide axes come first
  // A log range of 3 points from 1e-3 to 1e-1 is 1e-3, 1e-2, 1e-1 (geometric).
  REQUIRE(axes[1].values.size() == 3);
  CHECK(std::stod(axes[1].values[0].text) == Approx(1e-3));
  CHECK(std::stod(axes[1].values[1].text) == Approx(1e-2).epsilon(1e-12));
  CHECK(std::stod(axes[1].values[2].text) == Approx(1e-1));
  CHECK(axes[2].one_minus);
  CHECK(axes[2].target == std::vector<std::string>{"optimizer", "beta1"});
}

TEST_CASE("study errors are reported at their line and column", "[study]") {
  SECTION("unknown top-level and search keys, with a suggestion") {
    const auto e = errors_of(std::string(kValid) + "sweeps: {}\n");
    CHECK(has_error(e, "study.yaml:18:1: sweeps:", "did you mean 'sweep'"));
    std::string text = kValid;
    text.replace(text.find("  seeds:"), 8, "  sedes:");
    CHECK(has_error(errors_of(text), "study.yaml:8:3: search.sedes:", "unknown key"));
  }
  SECTION("an error in the base config points into the study file") {
    std::string text = kValid;
    text.replace(text.find("n_layers: 1"), 11, "n_layers: x");
    const auto e = errors_of(text);
    CHECK(has_error(e, "study.yaml:4:34: model.n_layers:", "expected an integer"));
    INFO(joined(e));
  }
  SECTION("an axis value the trial schema rejects is reported where it was written") {
    std::string text = kValid;
    text.replace(text.find("[0.1, 0.05]"), 11, "[0.1, abc]");
    // Reparameterised axes take numbers.
    CHECK(has_error(errors_of(text), "study.yaml:16:42:", "takes numbers"));
  }
  SECTION("a range needs num outside halton; a log range needs min > 0") {
    std::string text = kValid;
    text.replace(text.find(", num: 3"), 8, "");
    CHECK(has_error(errors_of(text), "study.yaml:15:23:", "needs `num`"));
    text = kValid;
    text.replace(text.find("min: 1.0e-3"), 11, "min: 0");
    CHECK(has_error(errors_of(text), "study.yaml:15:29:", "needs min > 0"));
  }
  SECTION("keys the sweep sets itself are refused") {
    std::string text = kValid;
    text.replace(text.find("train: {steps: 20,"), 18, "train: {ranks: 2, steps: 20,");
    CHECK(has_error(errors_of(text), "study.yaml:5:11: base.train.ranks:", "sweep.ranks_per_trial"));
  }
  SECTION("duplicate keys and halton-only keys") {
    std::string text = kValid;
    text.replace(text.find("  seeds: [1, 2]"), 15, "  seeds: [1, 2]\n  seeds: [3]");
    CHECK(has_error(errors_of(text), "study.yaml:9:3:", "duplicate"));
    text = kValid;
    text.replace(text.find("  seeds: [1, 2]"), 15, "  seeds: [1, 1]");
    CHECK(has_error(errors_of(text), "study.yaml:8:14: search.seeds:", "listed twice"));
    text = kValid;
    text.replace(text.find("  seeds: [1, 2]"), 15, "  points: 4");
    CHECK(has_error(errors_of(text), "study.yaml:8:3: search.points:", "halton only"));
  }
  SECTION("overrides of the study are checked at --set") {
    const auto e = errors_of(kValid, {"sweep.ranks_per_trial=0"});
    CHECK(has_error(e, "--set:1:23: sweep.ranks_per_trial:", ""));
    INFO(joined(e));
  }
}

namespace {

// Two optimizers on GLA and DeltaNet, the mixer given as `mixers` says (compare, scale models, an
// axis, or scale models and an axis: the silently-wrong combination issue 19 describes).
std::string mixer_study(const std::string& mixers) {
  return R"(study: mixers
base:
  task: {type: word_problem, group: Z5, seq_len: 12}
  model: {d_model: 16, n_layers: 1}
  train: {batch_size: 8}
search:
  strategy: grid
)" + std::string(mixers.find("axis") != std::string::npos ? "  space: {model.mixer.type: [gla, deltanet]}\n" : "") +
         R"(  optimizers:
    adamw: {space: {optimizer.lr: [1.0e-3, 3.0e-3]}}
    muon: {space: {optimizer.lr: [1.0e-2, 3.0e-2]}}
scales:
  tokens_per_param: 1
  data_ratios: [1, 2]
)" +
         (mixers.find("models") != std::string::npos
              ? "  models: {gla: {mixer: {type: gla}}, deltanet: {mixer: {type: deltanet}}}\n"
              : "  models: {s: {d_model: 16}}\n") +
         (mixers.find("compare") != std::string::npos ? "compare: {model.mixer.type: [gla, deltanet]}\n" : "");
}

}  // namespace

TEST_CASE("an axis over a key a scale model sets is an error before anything runs", "[study][compare]") {
  // Accepted before, it filed DeltaNet trials under the gla cells and lost the deltanet cells.
  const auto errors = errors_of(mixer_study("models+axis"));
  REQUIRE(errors.size() == 1);
  CHECK(has_error(errors, "study.yaml:8:11: search.space.model.mixer.type: ",
                  "overrides model.mixer.type, which scales.models.gla (line 15) sets"));
  CHECK(errors_of(mixer_study("models")).empty());
  CHECK(errors_of(mixer_study("axis")).empty());
}

TEST_CASE("a compared key set by an axis, a scale model or an optimizer base is an error", "[study][compare]") {
  CHECK(has_error(errors_of(mixer_study("compare+axis")), "study.yaml:16:11: compare.model.mixer.type: ",
                  "is also searched by search.space.model.mixer.type (line 8)"));
  CHECK(has_error(errors_of(mixer_study("compare+models")), "study.yaml:15:11: compare.model.mixer.type: ",
                  "overlaps model.mixer.type, which scales.models.gla (line 14) sets"));
  const std::string base_lr = R"(study: s
base:
  task: {type: word_problem, group: Z5, seq_len: 12}
  model: {d_model: 16, n_layers: 1}
  train: {steps: 4, batch_size: 8}
search: {strategy: grid, optimizers: {adamw: {base: {lr: 3.0e-3}}}}
compare: {optimizer.lr: [1.0e-3, 3.0e-3], seed: [1, 2], model.mixer: {type: gla}}
)";
  const auto errors = errors_of(base_lr);
  CHECK(has_error(errors, "study.yaml:7:11: compare.optimizer.lr: ",
                  "overlaps optimizer.lr, which search.optimizers.adamw.base sets"));
  CHECK(has_error(errors, "study.yaml:7:43: compare.seed: ", "seeds are searched with search.seeds"));
  CHECK(has_error(errors, "study.yaml:7:", "compare.model.mixer: a compared key takes a list of values"));
}

TEST_CASE("compared values are cells of their own with the same steps, never tuned", "[study][compare]") {
  const experiments::Study study = experiments::parse_study(mixer_study("compare"), "study.yaml");
  REQUIRE(study.compare.size() == 1);
  experiments::Planner planner(study);
  std::vector<std::string> names;
  for (const auto& c : planner.cells()) names.push_back(c.name);
  CHECK(names == std::vector<std::string>{"adamw/gla/s/x1", "adamw/gla/s/x2", "adamw/deltanet/s/x1",
                                          "adamw/deltanet/s/x2", "muon/gla/s/x1", "muon/gla/s/x2", "muon/deltanet/s/x1",
                                          "muon/deltanet/s/x2"});
  CHECK(experiments::compare_label(study, planner.cells()[2]) == "model.mixer.type=deltanet");
  // Every trial runs its cell's mixer; both mixers train on the same tokens at a ratio, the budget
  // of the model without the compared value (attention, the base's mixer).
  std::map<double, std::set<std::int64_t>> steps;
  for (const auto& t : planner.static_trials()) {
    const bool gla = t.cell_name.find("/gla/") != std::string::npos;
    CHECK(t.config.model.mixer.type == (gla ? "gla" : "deltanet"));
    steps[t.data_ratio].insert(t.config.train.steps);
  }
  CHECK(planner.static_trials().size() == 16);
  REQUIRE(steps[1].size() == 1);
  REQUIRE(steps[2].size() == 1);
  CHECK(*steps[2].begin() == 2 * *steps[1].begin());
  CHECK(planner.cell_base(0).train.steps == *steps[1].begin());
}
