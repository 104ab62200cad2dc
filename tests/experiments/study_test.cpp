// Study files: a valid study reads into the expected structure, and each kind of mistake is
// reported at its line and column in the study file.
#include "experiments/study/study.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "core/config/config_error.hpp"

using namespace expt;

namespace {

// Every error of parsing `text` as "study.yaml", as `file:line:col: path: message` lines.
std::vector<std::string> errors_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    experiments::parse_study(text, "study.yaml", sets);
  } catch (const config::ConfigErrors& e) {
    std::vector<std::string> out;
    for (const auto& err : e.errors()) out.push_back(err.str());
    return out;
  }
  return {};
}

bool has_error(const std::vector<std::string>& errors, const std::string& prefix, const std::string& fragment) {
  for (const std::string& e : errors)
    if (e.rfind(prefix, 0) == 0 && e.find(fragment) != std::string::npos) return true;
  return false;
}

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
