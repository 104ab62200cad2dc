// `expt analyze` on fixture sweeps whose answer is known (tests/analysis/fixture.hpp): best
// configs, near-best sets, ablations, grid-edge warnings, the AdamW fit and speedups (inside the
// fitted range, extrapolated, beyond the asymptote), diverged and failed trials ranked last, a
// sweep still running, seed intervals, the z-test, and the CSV/JSON renderings against the table.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "analysis/analysis.hpp"
#include "analysis/analyze_command.hpp"
#include "analysis/report.hpp"
#include "fixture.hpp"

using namespace expt;
namespace fs = std::filesystem;

namespace {

fs::path work_dir(const std::string& name) { return fs::path(EXPT_BINARY_DIR) / "test-work" / "analysis" / name; }

// Two optimizers x one model x three data ratios, lr x wd grid: 36 trials, 4 x 8 tokens a step.
std::string study_text(const std::string& seeds = "[1]") {
  return R"(study: fixture
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  train: {batch_size: 4, eval_every: 1000}
search:
  strategy: grid
  seeds: )" +
         seeds + R"(
  optimizers:
    adamw:
      space:
        optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]
        optimizer.weight_decay: [0.0, 0.1]
    muon:
      space:
        optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]
        optimizer.weight_decay: [0.0, 0.1]
scales:
  tokens_per_param: 20
  data_ratios: [1, 2, 4]
  models: {s: {d_model: 16}}
sweep: {max_attempts: 1}
)";
}

// AdamW's best loss follows L(D) = 1.5 + alpha D^-0.5 with alpha chosen so that L(D1) = 3.5.
struct Truth {
  double d1 = 0;  // tokens of the ratio-1 cell
  double adamw(double d) const { return 1.5 + 2.0 * std::sqrt(d1) / std::sqrt(d); }
};

double tokens_of(const experiments::PlannedTrial& t) {
  return static_cast<double>(t.config.train.steps) * t.config.train.batch_size * t.config.task.seq_len;
}

// Penalties around the best point: AdamW best at lr 3e-3 wd 0.1 (wd 0.0 costs 0.002, within the
// 3e-3 tolerance: near-best); Muon best at lr 1e-2 wd 0.0 (both axes at an edge).
double penalty(const experiments::PlannedTrial& t) {
  const bool adamw = t.optimizer == "adamw";
  const double best_lr = adamw ? 3e-3 : 1e-2, best_wd = adamw ? 0.1 : 0.0;
  double p = 0.1 * std::fabs(std::log10(t.config.optimizer.lr / best_lr));
  if (t.config.optimizer.weight_decay != best_wd) p += adamw ? 0.002 : 0.01;
  return p;
}

const experiments::PlannedTrial* find(const std::vector<experiments::PlannedTrial>& ts, const std::string& opt,
                                      double ratio, double lr, double wd) {
  for (const auto& t : ts)
    if (t.optimizer == opt && t.data_ratio == ratio && t.config.optimizer.lr == lr &&
        t.config.optimizer.weight_decay == wd)
      return &t;
  return nullptr;
}

struct Fixture {
  fs::path dir;
  Truth truth;
  std::vector<experiments::PlannedTrial> trials;
};

// Muon at ratio 1 reaches AdamW's loss at 2 D1 (speedup 2, inside the fitted range); at ratio 2
// AdamW's loss at 16 D1 (speedup 8, beyond the largest fitted D: extrapolated); at ratio 4 a loss
// below AdamW's asymptote 1.5 (beyond the fit). Muon lr 3e-3 wd 0.1 diverges at ratio 1 and lr 1e-3
// wd 0.1 fails there.
Fixture make_fixture(const std::string& name) {
  Fixture f;
  f.dir = work_dir(name);
  experiments::Study s = experiments::parse_study(study_text(), "fixture.yaml");
  experiments::Planner planner(s);
  for (const auto& t : planner.static_trials())
    if (t.optimizer == "adamw" && t.data_ratio == 1) f.truth.d1 = tokens_of(t);
  const Truth truth = f.truth;
  f.trials = fixture::write_sweep(f.dir, study_text(), [&](const experiments::PlannedTrial& t) {
    fixture::Outcome o;
    const double d = tokens_of(t);
    double best = truth.adamw(d);
    if (t.optimizer == "muon") {
      if (t.data_ratio == 1) best = truth.adamw(2 * d);
      if (t.data_ratio == 2) best = truth.adamw(8 * d);
      if (t.data_ratio == 4) best = 1.4;
      if (t.data_ratio == 1 && t.config.optimizer.weight_decay == 0.1 && t.config.optimizer.lr == 3e-3)
        o.status = "DIVERGED";
      if (t.data_ratio == 1 && t.config.optimizer.weight_decay == 0.1 && t.config.optimizer.lr == 1e-3)
        o.status = "FAILED";
    }
    o.loss = best + penalty(t);
    o.wall_s = 2.5;
    return o;
  });
  return f;
}

using fixture::cell;
using fixture::speedup;

}  // namespace

TEST_CASE("power-law fit recovers the parameters of exact data and inverts them", "[analysis][fit]") {
  const std::vector<double> d = {1e5, 2e5, 4e5, 8e5};
  std::vector<double> l;
  for (double x : d) l.push_back(300.0 * std::pow(x, -0.4) + 1.7);
  const auto fit = analysis::fit_power_law(d, l);
  REQUIRE(fit.ok);
  CHECK(fit.alpha == Approx(300.0).epsilon(1e-6));
  CHECK(fit.exponent == Approx(0.4).epsilon(1e-7));
  CHECK(fit.beta == Approx(1.7).epsilon(1e-8));
  for (double r : fit.residuals) CHECK(std::fabs(r) < 1e-9);
  const auto inside = analysis::invert_power_law(fit, 300.0 * std::pow(3e5, -0.4) + 1.7);
  CHECK(inside.kind == analysis::EffectiveData::Kind::inside);
  CHECK(inside.d_eff == Approx(3e5).epsilon(1e-7));
  CHECK(analysis::invert_power_law(fit, 300.0 * std::pow(2e6, -0.4) + 1.7).kind ==
        analysis::EffectiveData::Kind::extrapolated_above);
  CHECK(analysis::invert_power_law(fit, 300.0 * std::pow(5e4, -0.4) + 1.7).kind ==
        analysis::EffectiveData::Kind::extrapolated_below);
  const auto beyond = analysis::invert_power_law(fit, 1.7);
  CHECK(beyond.kind == analysis::EffectiveData::Kind::beyond_asymptote);
  CHECK(std::isinf(beyond.d_eff));
}

TEST_CASE("power-law fit refuses too few points and losses that do not fall with D", "[analysis][fit]") {
  CHECK_FALSE(analysis::fit_power_law({1, 2}, {3, 2}).ok);
  const auto rising = analysis::fit_power_law({1, 2, 4}, {2.0, 2.5, 3.0});
  CHECK_FALSE(rising.ok);
  CHECK(rising.message.find("does not decrease") != std::string::npos);
  CHECK_FALSE(analysis::fit_power_law({1, 1, 4}, {3, 2, 1}).ok);
}

TEST_CASE("fixture sweep: best configs, near-best sets, ablations and grid edges", "[analysis]") {
  const Fixture f = make_fixture("best");
  const auto a = analysis::analyze(analysis::load_sweep(f.dir), {});
  CHECK(a.trials_total == 36);
  CHECK(a.trials_finished == 36);
  CHECK_FALSE(a.partial);
  CHECK(a.tolerance == 3e-3);  // the study default for a grid
  REQUIRE(a.cells.size() == 6);

  for (double ratio : {1.0, 2.0, 4.0}) {
    const auto& c = cell(a, fmt::format("adamw/s/x{:g}", ratio));
    const double d = tokens_of(*find(f.trials, "adamw", ratio, 3e-3, 0.1));
    CHECK(c.best.point == "optimizer.lr=3.0e-3 optimizer.weight_decay=0.1");
    CHECK(c.best.loss == Approx(f.truth.adamw(d)).epsilon(1e-12));
    CHECK(c.best.tokens == d);
    // wd 0.0 costs 0.002 < tolerance: near-best; the lr neighbours cost ~0.05: not.
    CHECK(c.near_best == std::vector<std::string>{"optimizer.lr=3.0e-3 optimizer.weight_decay=0.1",
                                                  "optimizer.lr=3.0e-3 optimizer.weight_decay=0.0"});
    REQUIRE(c.ablation.size() == 3);
    CHECK(c.ablation[0].axis == "optimizer.lr");
    CHECK(c.ablation[0].value == "1.0e-3");
    CHECK(c.ablation[0].delta == Approx(0.1 * std::log10(3.0)).epsilon(1e-9));
    CHECK(c.ablation[1].value == "1.0e-2");
    CHECK(c.ablation[2].axis == "optimizer.weight_decay");
    CHECK(c.ablation[2].value == "0.0");
    CHECK(c.ablation[2].delta == Approx(0.002).epsilon(1e-6));
    CHECK(c.edge_warnings == std::vector<std::string>{"optimizer.weight_decay=0.1 at the upper edge"});
    CHECK(c.completed == 6);
    CHECK(c.trials_finished == 6);
    CHECK(c.cpu_s == 6 * 2.5);
  }
  const auto& m1 = cell(a, "muon/s/x1");
  CHECK(m1.best.point == "optimizer.lr=1.0e-2 optimizer.weight_decay=0.0");
  CHECK(m1.edge_warnings == std::vector<std::string>{"optimizer.lr=1.0e-2 at the upper edge",
                                                     "optimizer.weight_decay=0.0 at the lower edge"});
  CHECK(m1.near_best == std::vector<std::string>{"optimizer.lr=1.0e-2 optimizer.weight_decay=0.0"});
  CHECK(m1.diverged == 1);
  CHECK(m1.failed == 1);
  CHECK(m1.completed == 4);
  // The ablation row of the diverged point is absent (it differs in two axes); the wd row holds
  // lr 1e-2 wd 0.1, finite.
  REQUIRE(m1.ablation.size() == 3);
  CHECK(m1.ablation[2].point == "optimizer.lr=1.0e-2 optimizer.weight_decay=0.1");

  // Budget: every finished trial, 2.5 s each on one rank; tokens as trained.
  REQUIRE(a.budget.size() == 2);
  CHECK(a.budget[0].optimizer == "adamw");
  CHECK(a.budget[0].trials == 18);
  CHECK(a.budget[0].cpu_s == 18 * 2.5);
  CHECK(a.budget[1].trials == 18);
}

TEST_CASE("fixture sweep: AdamW fit, speedups inside, extrapolated and beyond the fit", "[analysis][speedup]") {
  const Fixture f = make_fixture("speedup");
  const auto a = analysis::analyze(analysis::load_sweep(f.dir), {});
  REQUIRE(a.fits.size() == 1);
  const auto& fit = a.fits[0].fit;
  REQUIRE(fit.ok);
  CHECK(fit.n_points == 3);
  CHECK(fit.exponent == Approx(0.5).epsilon(1e-7));
  CHECK(fit.beta == Approx(1.5).epsilon(1e-7));
  CHECK(fit.alpha == Approx(2.0 * std::sqrt(f.truth.d1)).epsilon(1e-6));
  for (double r : fit.residuals) CHECK(std::fabs(r) < 1e-9);

  for (double ratio : {1.0, 2.0, 4.0}) {
    const auto& r = speedup(a, fmt::format("adamw/s/x{:g}", ratio));
    CHECK(r.available);
    CHECK(r.speedup == Approx(1.0).epsilon(1e-7));
    CHECK(r.flag.empty());
  }
  const auto& s1 = speedup(a, "muon/s/x1");
  CHECK(s1.available);
  CHECK(s1.speedup == Approx(2.0).epsilon(1e-7));
  CHECK(s1.flag.empty());
  CHECK(s1.ci_method == "near-best");  // one seed: intervals from the near-best sets
  CHECK(s1.ci_low <= s1.speedup);
  CHECK(s1.ci_high >= s1.speedup);
  const auto& s2 = speedup(a, "muon/s/x2");
  CHECK(s2.speedup == Approx(8.0).epsilon(1e-6));
  CHECK(s2.flag == "extrapolated above fitted D");
  const auto& s4 = speedup(a, "muon/s/x4");
  CHECK(s4.available);
  CHECK(std::isinf(s4.d_eff));
  CHECK(std::isinf(s4.speedup));
  CHECK_FALSE(std::isnan(s4.speedup));
  CHECK(s4.flag == "beyond fit: L <= beta");
}

TEST_CASE("diverged and failed trials rank last even when every other point is worse", "[analysis]") {
  // One cell; the point that would be best diverged, another failed: the best is the next one.
  const std::string text = R"(study: diverge
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  train: {steps: 8, batch_size: 4, eval_every: 1000}
search:
  strategy: grid
  space: {optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]}
sweep: {max_attempts: 1}
)";
  fixture::write_sweep(work_dir("diverge"), text, [](const experiments::PlannedTrial& t) {
    fixture::Outcome o;
    o.loss = 2.0;
    if (t.config.optimizer.lr == 3e-3) o.status = "DIVERGED";
    if (t.config.optimizer.lr == 1e-2) o.status = "FAILED";
    return o;
  });
  const auto a = analysis::analyze(analysis::load_sweep(work_dir("diverge")), {});
  REQUIRE(a.cells.size() == 1);
  const auto& c = a.cells[0];
  CHECK(c.best.point == "optimizer.lr=1.0e-3");
  CHECK(c.best.loss == 2.0);
  REQUIRE(c.ablation.size() == 2);
  CHECK(std::isinf(c.ablation[0].loss));
  CHECK(std::isinf(c.ablation[1].loss));
  CHECK(c.near_best == std::vector<std::string>{"optimizer.lr=1.0e-3"});
  CHECK(a.fits.empty());  // no scales: no speedup
}

TEST_CASE("a sweep still running is analysed from its finished trials and says so", "[analysis]") {
  const fs::path dir = work_dir("running");
  int n = 0;
  fixture::write_sweep(dir, study_text(), [&](const experiments::PlannedTrial& t) -> std::optional<fixture::Outcome> {
    if (t.optimizer == "muon" || n++ % 2 == 1) return std::nullopt;  // half of AdamW done, Muon not started
    fixture::Outcome o;
    o.loss = 3.0 - 0.1 * t.data_ratio;
    return o;
  });
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  CHECK(a.partial);
  CHECK(a.trials_finished == 9);
  REQUIRE_FALSE(a.notes.empty());
  CHECK(a.notes[0].find("still running: 9 of 36") != std::string::npos);
  CHECK(cell(a, "adamw/s/x1").pending == 3);
  CHECK_FALSE(cell(a, "muon/s/x1").has_best);
  for (const auto& r : a.speedups)
    if (r.optimizer == "muon") CHECK_FALSE(r.available);
}

TEST_CASE("seed repeats give the interval and equal seeds give a zero-width one", "[analysis][speedup]") {
  const fs::path dir = work_dir("seeds");
  double d1 = 0;
  {
    experiments::Study s = experiments::parse_study(study_text("[1, 2]"), "fixture.yaml");
    experiments::Planner planner(s);
    for (const auto& t : planner.static_trials())
      if (t.optimizer == "adamw" && t.data_ratio == 1) d1 = tokens_of(t);
  }
  const Truth truth{d1};
  fixture::write_sweep(dir, study_text("[1, 2]"), [&](const experiments::PlannedTrial& t) {
    fixture::Outcome o;
    const double d = tokens_of(t);
    o.loss = (t.optimizer == "muon" ? truth.adamw(2 * d) : truth.adamw(d)) + penalty(t);
    return o;
  });
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  const auto& r = speedup(a, "muon/s/x1");
  CHECK(r.ci_method == "seeds");
  CHECK(r.speedup == Approx(2.0).epsilon(1e-7));
  CHECK(r.ci_low == Approx(2.0).epsilon(1e-6));
  CHECK(r.ci_high == Approx(2.0).epsilon(1e-6));
  CHECK(cell(a, "muon/s/x1").best.seed_losses.size() == 2);
}

TEST_CASE("steps to target with the one-sided z-test", "[analysis][target]") {
  const Fixture f = make_fixture("target");
  analysis::AnalysisOptions o;
  const double best_adamw_x1 = f.truth.adamw(f.truth.d1);  // 3.5
  o.target = best_adamw_x1 + 0.15;                         // eval losses final + 0.3, 0.2, 0.1, 0: reached at k = 3
  const auto a = analysis::analyze(analysis::load_sweep(f.dir), o);
  const analysis::TargetRow* row = nullptr;
  for (const auto& t : a.targets)
    if (t.cell == "adamw/s/x1") row = &t;
  REQUIRE(row != nullptr);
  const auto* trial = find(f.trials, "adamw", 1, 3e-3, 0.1);
  CHECK(row->point == trial->point);
  CHECK(row->reached);
  CHECK(row->steps_to_target == trial->config.train.steps * 3 / 4);
  CHECK(row->tokens_to_target == row->steps_to_target * 32);
  CHECK(row->mean_final == Approx(best_adamw_x1).epsilon(1e-6));
  CHECK(row->z == Approx(0.15 / 0.0013).epsilon(1e-3));
  CHECK(row->significant);
  // The ratio-4 AdamW cell (best 2.5) reaches it at its first eval; a target below every loss is
  // never reached and fails the test.
  o.target = 1.0;
  const auto b = analysis::analyze(analysis::load_sweep(f.dir), o);
  for (const auto& t : b.targets) {
    CHECK_FALSE(t.reached);
    CHECK_FALSE(t.significant);
    CHECK(t.z < 0);
  }
}

TEST_CASE("CSV and JSON carry the same values as the terminal table", "[analysis][report]") {
  const Fixture f = make_fixture("formats");
  analysis::AnalyzeCommandArgs args;
  args.dir = f.dir.string();
  args.options.target = 3.0;
  std::ostringstream table_out, json_out;
  REQUIRE(analysis::analyze_command(args, table_out) == 0);
  args.format = "json";
  REQUIRE(analysis::analyze_command(args, json_out) == 0);
  const auto json = nlohmann::json::parse(json_out.str());
  const auto a = analysis::analyze(analysis::load_sweep(f.dir), args.options);
  const auto tables = analysis::make_tables(a);
  CHECK(table_out.str() == analysis::render_text(a, tables));
  std::set<std::string> names;
  for (const auto& t : tables) {
    names.insert(t.name);
    // The CSV file under DIR/analysis/, parsed back, formats to the table's text cell by cell.
    std::ifstream in(f.dir / "analysis" / (t.name + ".csv"));
    REQUIRE(in.good());
    std::string line;
    std::getline(in, line);
    CHECK(line == "# " + analysis::provenance(a));
    std::getline(in, line);
    std::string header;
    for (std::size_t c = 0; c < t.columns.size(); ++c) header += (c ? "," : "") + t.columns[c];
    CHECK(line == header);
    const auto& rows = json["tables"][t.name];
    REQUIRE(rows.size() == t.rows.size());
    for (std::size_t r = 0; r < t.rows.size(); ++r) {
      REQUIRE(std::getline(in, line));
      // Split on commas outside quotes.
      std::vector<std::string> fields(1);
      bool quoted = false;
      for (std::size_t i = 0; i < line.size(); ++i) {
        const char ch = line[i];
        if (ch == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"') {
          fields.back() += '"';
          ++i;
        } else if (ch == '"') {
          quoted = !quoted;
        } else if (ch == ',' && !quoted) {
          fields.emplace_back();
        } else {
          fields.back() += ch;
        }
      }
      REQUIRE(fields.size() == t.columns.size());
      for (std::size_t c = 0; c < t.columns.size(); ++c) {
        const analysis::Value& v = t.rows[r][c];
        const auto& j = rows[r][t.columns[c]];
        INFO(t.name << " row " << r << " column " << t.columns[c]);
        if (v.kind == analysis::Value::Kind::text) {
          CHECK(fields[c] == v.text);
          CHECK(j == v.text);
        } else if (v.kind == analysis::Value::Kind::missing) {
          CHECK(fields[c].empty());
          CHECK(j.is_null());
        } else {
          const double parsed = std::stod(fields[c]);
          CHECK(analysis::Value::num(parsed, v.format).display() == v.display());
          if (std::isinf(v.number)) {
            CHECK(j == "inf");
          } else {
            CHECK(j.get<double>() == parsed);  // 17 significant digits round-trip a double
          }
        }
      }
    }
  }
  CHECK(names == std::set<std::string>{"cells", "ablation", "budget", "fit", "residuals", "speedup", "target"});
  CHECK(fs::exists(f.dir / "analysis" / "analysis.md"));
  CHECK(fs::exists(f.dir / "analysis" / "analysis.txt"));
}

TEST_CASE("analyze reports a directory that is not a sweep", "[analysis]") {
  const fs::path dir = work_dir("not_a_sweep");
  fs::remove_all(dir);
  fs::create_directories(dir);
  CHECK_THROWS_WITH(analysis::load_sweep(dir), Catch::Contains("not a sweep directory"));
  analysis::AnalyzeCommandArgs args;
  args.dir = dir.string();
  std::ostringstream out;
  CHECK(analysis::analyze_command(args, out) == 1);
}

TEST_CASE("points longer than 256 characters keep their typed axes through sweep.h5 and the ablation table",
          "[analysis][axes]") {
  // Muon with a learning rate and a long adam_patterns list (a string axis): every point's label is
  // over 256 characters, the old fixed text field of sweep.h5.
  std::string long_a, long_b;
  std::vector<std::string> patterns_b;  // long_b as the config reads it
  for (int i = 0; i < 12; ++i) {
    long_a += fmt::format("{}blocks.{}.mixer.q_proj.weight", i ? "," : "", i);
    long_b += fmt::format("{}blocks.{}.mlp.gate_proj.weight", i ? "," : "", i);
    patterns_b.push_back(fmt::format("blocks.{}.mlp.gate_proj.weight", i));
  }
  REQUIRE(long_a.size() > 256);
  const std::string text = fmt::format(R"(study: long_points
base:
  task: {{type: word_problem, group: Z3, seq_len: 8}}
  model: {{d_model: 16, n_layers: 1, mixer: {{type: attention, heads: 2}}, mlp: {{intermediate_size: 32}}}}
  optimizer: {{type: muon}}
  train: {{steps: 8, batch_size: 4, eval_every: 1000}}
search:
  strategy: grid
  space:
    optimizer.lr: [1.0e-3, 3.0e-3]
    optimizer.adam_patterns: ["{}", "{}"]
    train.batch_size: [4, 8]
sweep: {{max_attempts: 1}}
)",
                                       long_a, long_b);
  const fs::path dir = work_dir("long_points");
  // Best at lr 3e-3, pattern A, batch 8; each other value costs 0.1, 0.2, 0.05.
  const auto trials = fixture::write_sweep(dir, text, [&](const experiments::PlannedTrial& t) {
    fixture::Outcome o;
    o.loss = 2.0 + (t.config.optimizer.lr == 1e-3 ? 0.1 : 0) +
             (t.config.optimizer.adam_patterns == patterns_b ? 0.2 : 0) + (t.config.train.batch_size == 4 ? 0.05 : 0);
    return o;
  });
  REQUIRE(trials.size() == 8);
  for (const auto& t : trials) CHECK(t.point.size() > 256);
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  REQUIRE(a.cells.size() == 1);
  const auto& c = a.cells[0];
  const std::string best = "optimizer.lr=3.0e-3 optimizer.adam_patterns=" + long_a + " train.batch_size=8";
  CHECK(c.best.point == best);
  CHECK(c.best.loss == 2.0);
  REQUIRE(c.best.axes.size() == 3);
  CHECK(std::get<double>(c.best.axes[0].second) == 3e-3);
  CHECK(std::get<std::string>(c.best.axes[1].second) == long_a);
  CHECK(std::get<std::int64_t>(c.best.axes[2].second) == 8);
  // One row per axis, in study order, with the whole value.
  REQUIRE(c.ablation.size() == 3);
  CHECK(c.ablation[0].axis == "optimizer.lr");
  CHECK(c.ablation[0].value == "1.0e-3");
  CHECK(c.ablation[0].delta == Approx(0.1));
  CHECK(c.ablation[1].axis == "optimizer.adam_patterns");
  CHECK(c.ablation[1].value == long_b);
  CHECK(c.ablation[1].point == "optimizer.lr=3.0e-3 optimizer.adam_patterns=" + long_b + " train.batch_size=8");
  CHECK(c.ablation[1].delta == Approx(0.2));
  CHECK(c.ablation[2].axis == "train.batch_size");
  CHECK(c.ablation[2].value == "4");
  CHECK(c.edge_warnings == std::vector<std::string>{"optimizer.lr=3.0e-3 at the upper edge",
                                                    "optimizer.adam_patterns=" + long_a + " at the lower edge",
                                                    "train.batch_size=8 at the upper edge"});

  // h5py reads the typed columns back, and the Python reader's best point is the table's.
  analysis::AnalyzeCommandArgs args;
  args.dir = dir.string();
  std::ostringstream out;
  REQUIRE(analysis::analyze_command(args, out) == 0);
  const std::string cmd = std::string("'") + EXPT_PYTHON + "' '" + EXPT_SOURCE_DIR +
                          "/tests/scripts/check_sweep_axes.py' '" + dir.string() + "' '" + long_a + "' > '" +
                          (dir / "check.log").string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream log(dir / "check.log");
  const std::string log_text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  INFO(log_text);
  CHECK(status == 0);
}
