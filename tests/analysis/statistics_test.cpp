// The statistics of `expt analyze` on fixture sweeps whose answers are known (tests/analysis/fixture.hpp):
// seed spread and bootstrap intervals over seeds or the near-best set, zero-width intervals printed
// as "n/a (...)", fit degrees of freedom and interpolation, extrapolation flags in the table and the
// summary, speedups only at ratios the baseline ran, speedups in compute and wall-clock, --metric,
// the z-test on the measured seed spread, comparison cells and cells labelled by what they ran.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "analysis/analysis.hpp"
#include "analysis/analyze_command.hpp"
#include "analysis/report.hpp"
#include "fixture.hpp"

using namespace expt;
namespace fs = std::filesystem;

namespace {

fs::path work_dir(const std::string& name) { return fs::path(EXPT_BINARY_DIR) / "test-work" / "statistics" / name; }

// AdamW and Muon, one lr axis, one model at `ratios`; `extra` is appended (e.g. a compare section).
std::string study(const std::string& seeds, const std::string& ratios, const std::string& extra = "") {
  return fmt::format(R"(study: stats
base:
  task: {{type: word_problem, group: Z3, seq_len: 8}}
  model: {{n_layers: 1, mixer: {{type: attention, heads: 2}}, mlp: {{intermediate_size: 32}}}}
  train: {{batch_size: 4, eval_every: 1000}}
search:
  strategy: grid
  seeds: {}
  optimizers:
    adamw: {{space: {{optimizer.lr: [1.0e-3, 3.0e-3]}}}}
    muon: {{space: {{optimizer.lr: [1.0e-2, 3.0e-2]}}}}
scales:
  tokens_per_param: 2
  data_ratios: {}
  models: {{s: {{d_model: 16}}}}
sweep: {{max_attempts: 1}}
{})",
                     seeds, ratios, extra);
}

// One optimizer, no scales: a single cell searching `space`.
std::string one_cell_study(const std::string& space) {
  return R"(study: one_cell
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  train: {steps: 8, batch_size: 4, eval_every: 1000}
search: {strategy: grid, space: )" +
         space + "}\nsweep: {max_attempts: 1}\n";
}

double tokens_of(const experiments::PlannedTrial& t) {
  return static_cast<double>(t.config.train.steps) * t.config.train.batch_size * t.config.task.seq_len;
}

// Tokens of the ratio-1 cell (every optimizer trains the same tokens at a ratio).
double d1_of(const std::string& text) {
  const experiments::Study s = experiments::parse_study(text, "fixture.yaml");
  experiments::Planner planner(s);
  for (const auto& t : planner.static_trials())
    if (t.data_ratio == 1) return tokens_of(t);
  return 0;
}

// AdamW's best loss L(D) = 1.5 + 2 sqrt(D1 / D); Muon's at D is AdamW's at 2 D (speedup 2), at
// ratio 4 AdamW's at 16 D (beyond the fitted range when AdamW runs up to ratio 4 or 8). The
// second learning rate of each optimizer costs 0.1.
double truth(double d1, double d) { return 1.5 + 2.0 * std::sqrt(d1 / d); }
double planned_loss(double d1, const experiments::PlannedTrial& t) {
  const double d = tokens_of(t);
  const bool first_lr = t.config.optimizer.lr == 1e-3 || t.config.optimizer.lr == 1e-2;
  double l = t.optimizer == "adamw" ? truth(d1, d) : truth(d1, (t.data_ratio == 4 ? 16 : 2) * d);
  return l + (first_lr ? 0 : 0.1);
}

using fixture::cell;
using fixture::speedup;

// Writes the study `text` as a sweep named `name` with every trial at planned_loss, after
// `adjust` (which may change the outcome, or return nothing to leave the trial pending).
using Adjust = std::function<std::optional<fixture::Outcome>(const experiments::PlannedTrial&, fixture::Outcome)>;
fs::path write_planned(const std::string& name, const std::string& text, const Adjust& adjust = {}) {
  const double d1 = d1_of(text);
  const fs::path dir = work_dir(name);
  fixture::write_sweep(dir, text, [&](const experiments::PlannedTrial& t) -> std::optional<fixture::Outcome> {
    fixture::Outcome o;
    o.loss = planned_loss(d1, t);
    return adjust ? adjust(t, o) : o;
  });
  return dir;
}

// The display text of `column` in the row of `table` whose first columns match `lead`.
std::string shown(const std::vector<analysis::Table>& tables, const std::string& table, std::size_t row,
                  const std::string& column) {
  for (const auto& t : tables)
    if (t.name == table)
      for (std::size_t c = 0; c < t.columns.size(); ++c)
        if (t.columns[c] == column) return t.rows.at(row).at(c).display();
  FAIL("no column " << table << "." << column);
  return "";
}

std::size_t row_of(const analysis::Analysis& a, const std::string& cell_name) {
  for (std::size_t i = 0; i < a.cells.size(); ++i)
    if (a.cells[i].info.name == cell_name) return i;
  FAIL("no cell " << cell_name);
  return 0;
}

}  // namespace

TEST_CASE("seed spread, every seed's value and a bootstrap interval over seeds", "[analysis][statistics]") {
  // Three seeds at -0.01, 0, +0.01 around the planned loss: sd 0.01; the mean of three draws is at
  // its lowest (all -0.01) with probability 1/27 > 2.5%, so the 95% interval is exactly
  // [L - 0.01, L + 0.01].
  const std::string text = study("[1, 2, 3]", "[1, 2, 4]");
  const double d1 = d1_of(text);
  const fs::path dir = write_planned("seeds", text, [](const experiments::PlannedTrial& t, fixture::Outcome o) {
    o.loss += 0.01 * (static_cast<double>(t.seed) - 2);
    return o;
  });
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  const auto& c = cell(a, "adamw/s/x1");
  REQUIRE(c.best.seed_losses.size() == 3);
  const auto spread = analysis::seed_spread(c.best.seed_losses);
  CHECK(spread.sd == Approx(0.01).epsilon(1e-9));
  CHECK(spread.min == Approx(truth(d1, d1) - 0.01).epsilon(1e-12));
  CHECK(spread.max == Approx(truth(d1, d1) + 0.01).epsilon(1e-12));
  CHECK(c.best_interval.method == "seeds");
  CHECK(c.best_interval.degenerate.empty());
  CHECK(c.best_interval.low == Approx(truth(d1, d1) - 0.01).epsilon(1e-12));
  CHECK(c.best_interval.high == Approx(truth(d1, d1) + 0.01).epsilon(1e-12));
  const auto tables = analysis::make_tables(a);
  const std::size_t r = row_of(a, "adamw/s/x1");
  CHECK(shown(tables, "cells", r, "seed_sd") == "0.0100");
  CHECK(shown(tables, "cells", r, "seed_values") == fmt::format("seed 1: {:.4f}; seed 2: {:.4f}; seed 3: {:.4f}",
                                                                truth(d1, d1) - 0.01, truth(d1, d1),
                                                                truth(d1, d1) + 0.01));
  CHECK(shown(tables, "cells", r, "ci_method") == "seeds");
  CHECK(speedup(a, "muon/s/x1").ci_method == "seeds");
  CHECK(speedup(a, "muon/s/x1").ci_high > speedup(a, "muon/s/x1").ci_low);

  // The z-test uses the point's measured spread: sigma 0.01 from three seeds, not --sigma.
  analysis::AnalysisOptions o;
  o.target = truth(d1, d1) + 0.02;
  const auto t = analysis::analyze(analysis::load_sweep(dir), o);
  for (const auto& row : t.targets)
    if (row.cell == "adamw/s/x1") {
      CHECK(row.sigma_source == "seeds");
      CHECK(row.sigma == Approx(0.01).epsilon(1e-9));
      CHECK(row.z == Approx(0.02 * std::sqrt(3.0) / 0.01).epsilon(1e-6));
    }
}

TEST_CASE("one seed: intervals over the near-best set, zero width printed as n/a", "[analysis][statistics]") {
  const fs::path dir = write_planned("one_seed", study("[1]", "[1, 2, 4]"));
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  // Every near-best set is one point (the other lr costs 0.1 > tolerance): nothing to resample.
  const auto& c = cell(a, "muon/s/x1");
  CHECK(c.best_interval.method == "near-best");
  CHECK(c.best_interval.degenerate == "n/a (one point)");
  const auto& s = speedup(a, "muon/s/x1");
  CHECK(s.ci_method == "near-best");
  CHECK(s.ci_degenerate == "n/a (one point)");
  const auto tables = analysis::make_tables(a);
  CHECK(shown(tables, "cells", row_of(a, "muon/s/x1"), "ci_low") == "n/a (one point)");
  CHECK(shown(tables, "cells", row_of(a, "muon/s/x1"), "seed_sd") == "-");
  const std::string text_out = analysis::render_text(a, tables);
  // No interval is ever printed as [x, x]: no row shows the same number as ci_low and ci_high.
  for (const auto& t : tables)
    for (std::size_t r = 0; r < t.rows.size(); ++r) {
      bool has = false;
      for (const auto& col : t.columns) has = has || col == "ci_low";
      if (!has) continue;
      const std::string lo = shown(tables, t.name, r, "ci_low"), hi = shown(tables, t.name, r, "ci_high");
      if (lo != "-") CHECK(lo != hi);
    }
  CHECK(text_out.find("interval n/a (one point)") != std::string::npos);  // the summary says so too
}

TEST_CASE("fit degrees of freedom: 3 ratios interpolate, 4 ratios fit with residuals", "[analysis][statistics]") {
  for (const std::string& ratios : std::vector<std::string>{"[1, 2, 4]", "[1, 2, 4, 8]"}) {
    const fs::path dir = write_planned("dof", study("[1]", ratios));
    const auto a = analysis::analyze(analysis::load_sweep(dir), {});
    REQUIRE(a.fits.size() == 1);
    const bool three = ratios == "[1, 2, 4]";
    INFO(ratios);
    CHECK(a.fits[0].fit.n_points == (three ? 3 : 4));
    CHECK(a.fits[0].degrees_of_freedom == (three ? 0 : 1));
    CHECK(a.fits[0].interpolation == three);
    const auto tables = analysis::make_tables(a);
    CHECK(shown(tables, "fit", 0, "dof") == (three ? "0" : "1"));
    CHECK(shown(tables, "fit", 0, "status") == (three ? "interpolation (0 degrees of freedom)" : "ok"));
    CHECK((shown(tables, "residuals", 0, "residual") == "n/a (interpolation)") == three);
    const std::string summary = analysis::summary(a, tables);
    CHECK((summary.find("an interpolation") != std::string::npos) == three);
    // Muon at ratio 4 reaches AdamW's loss at 16 D: beyond the largest fitted D (4 D1 or 8 D1),
    // extrapolated in the table and in the summary; ratio 1 (2 D1) is inside.
    CHECK(speedup(a, "muon/s/x4").extrapolated);
    CHECK(speedup(a, "muon/s/x4").flag == "extrapolated above fitted D");
    CHECK_FALSE(speedup(a, "muon/s/x1").extrapolated);
    CHECK(speedup(a, "muon/s/x1").speedup == Approx(2.0).epsilon(1e-6));
    CHECK(summary.find("s at ratio 4: 16.000x the tokens of adamw") != std::string::npos);
    CHECK(summary.find("EXTRAPOLATED (extrapolated above fitted D)") != std::string::npos);
    const std::string x1 = summary.substr(
        summary.find("at ratio 1:"), summary.find("; ", summary.find("at ratio 1:")) - summary.find("at ratio 1:"));
    CHECK(x1.find("EXTRAPOLATED") == std::string::npos);
  }
}

TEST_CASE("speedups only at ratios the baseline ran, in tokens, compute and wall-clock", "[analysis][statistics]") {
  // AdamW's ratio-8 cell never ran: Muon's ratio-8 speedup is not read off the curve. Muon's step
  // costs twice AdamW's CPU time and its trials four times the wall time per token: at a token
  // speedup of 2, compute 2 x 1/2 = 1 and wall-clock 2 x 1/4 = 0.5.
  const fs::path dir =
      write_planned("costs", study("[1]", "[1, 2, 4, 8]"),
                    [](const experiments::PlannedTrial& t, fixture::Outcome o) -> std::optional<fixture::Outcome> {
                      if (t.optimizer == "adamw" && t.data_ratio == 8) return std::nullopt;
                      const bool muon = t.optimizer == "muon";
                      o.step_s = muon ? 0.02 : 0.01;
                      o.wall_s = (muon ? 4e-4 : 1e-4) * tokens_of(t);
                      return o;
                    });
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  const auto& x8 = speedup(a, "muon/s/x8");
  CHECK_FALSE(x8.available);
  CHECK(x8.flag == "adamw has no finished cell at this ratio");
  const auto& x1 = speedup(a, "muon/s/x1");
  REQUIRE(x1.available);
  CHECK(x1.speedup == Approx(2.0).epsilon(1e-6));
  CHECK(x1.compute_speedup == Approx(1.0).epsilon(1e-6));
  CHECK(x1.wall_speedup == Approx(0.5).epsilon(1e-6));
  const auto& self = speedup(a, "adamw/s/x2");
  CHECK(self.compute_speedup == Approx(1.0).epsilon(1e-6));
  const auto tables = analysis::make_tables(a);
  const std::string summary = analysis::summary(a, tables);
  CHECK(summary.find("2.000x the tokens of adamw") != std::string::npos);
  CHECK(summary.find("1.000x in compute, 0.500x in wall-clock") != std::string::npos);
  CHECK(summary.find("at ratio 8: no speedup (adamw has no finished cell at this ratio)") != std::string::npos);
}

TEST_CASE("every number of the summary is the text of a table cell", "[analysis][statistics]") {
  const fs::path dir = write_planned("summary", study("[1, 2]", "[1, 2, 4]"),
                                     [](const experiments::PlannedTrial& t, fixture::Outcome o) {
                                       o.loss += 0.003 * static_cast<double>(t.seed);
                                       o.step_s = 0.01;
                                       return o;
                                     });
  const auto a = analysis::analyze(analysis::load_sweep(dir), {});
  const auto tables = analysis::make_tables(a);
  std::set<std::string> texts;
  for (const auto& t : tables)
    for (const auto& row : t.rows)
      for (const auto& v : row) texts.insert(v.display());
  const std::string summary = analysis::summary(a, tables);
  INFO(summary);
  // Numbers outside names (cell names hold their ratio: adamw/s/x1).
  const std::regex number(R"((^|[\s(])(-?[0-9]+(\.[0-9]+)?)(?=[x,;.)\s]|$))");
  int checked = 0;
  for (auto it = std::sregex_iterator(summary.begin(), summary.end(), number); it != std::sregex_iterator(); ++it) {
    const std::string n = (*it)[2].str();
    INFO(n);
    CHECK(texts.count(n) == 1);
    ++checked;
  }
  CHECK(checked >= 8);
}

TEST_CASE("the metric option ranks and reports by another eval column, higher is better for accuracies",
          "[analysis][statistics]") {
  // Accuracy rises with the learning rate while the loss falls with it: the best points differ.
  const std::string text = one_cell_study("{optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]}");
  const fs::path dir = work_dir("metric");
  fixture::write_sweep(dir, text, [](const experiments::PlannedTrial& t) {
    fixture::Outcome o;
    o.loss = 2.0 + 10 * t.config.optimizer.lr;
    o.token_acc = 0.5 + 10 * t.config.optimizer.lr;
    return o;
  });
  const auto by_loss = analysis::analyze(analysis::load_sweep(dir), {});
  CHECK(by_loss.cells[0].best.point == "optimizer.lr=1.0e-3");
  analysis::AnalyzeCommandArgs args;
  args.dir = dir.string();
  args.options.metric = "token_acc";
  args.format = "json";
  std::ostringstream out;
  REQUIRE(analysis::analyze_command(args, out) == 0);
  const auto json = nlohmann::json::parse(out.str());
  CHECK(json["metric"] == "token_acc");
  CHECK(json["higher_is_better"] == true);
  const auto& row = json["tables"]["cells"][0];
  CHECK(row["best_point"] == "optimizer.lr=1.0e-2");
  CHECK(row["best_token_acc"].get<double>() == Approx(0.6).epsilon(1e-6));
  // The ablation reports accuracies and their difference from the best (negative: worse).
  CHECK(json["tables"]["ablation"][0]["token_acc"].get<double>() == Approx(0.51).epsilon(1e-6));
  CHECK(json["tables"]["ablation"][0]["delta"].get<double>() == Approx(-0.09).epsilon(1e-5));
  analysis::AnalysisOptions bad;
  bad.metric = "perplexity";
  CHECK_THROWS_WITH(analysis::analyze(analysis::load_sweep(dir), bad), Catch::Contains("has no such eval column"));
}

TEST_CASE("cells are labelled by what their trials ran", "[analysis][statistics][compare]") {
  // A searched mixer: the cell holds trials of two mixers, and the analysis says so.
  const std::string searched = one_cell_study("{model.mixer.type: [attention, gla]}");
  fixture::write_sweep(work_dir("searched"), searched, [](const experiments::PlannedTrial&) {
    fixture::Outcome o;
    o.loss = 2.0;
    return o;
  });
  const auto a = analysis::analyze(analysis::load_sweep(work_dir("searched")), {});
  REQUIRE(a.cells.size() == 1);
  CHECK(a.cells[0].ran == "model.mixer.type=attention|gla");
  CHECK(a.cells[0].mixed);
  bool noted = false;
  for (const auto& n : a.notes)
    noted = noted || n.find("its trials ran model.mixer.type=attention|gla") != std::string::npos;
  CHECK(noted);

  // Compared mixers: one cell per mixer, each fitted against AdamW on the same mixer.
  const fs::path dir =
      write_planned("compared", study("[1]", "[1, 2, 4]", "compare: {model.mixer.type: [attention, gla]}\n"),
                    [](const experiments::PlannedTrial& t, fixture::Outcome o) {
                      o.loss += t.cell_name.find("/gla/") != std::string::npos ? 0.2 : 0;
                      return o;
                    });
  const auto b = analysis::analyze(analysis::load_sweep(dir), {});
  REQUIRE(b.cells.size() == 12);
  CHECK(cell(b, "muon/gla/s/x1").ran == "model.mixer.type=gla");
  CHECK(cell(b, "muon/gla/s/x1").info.compare_text() == "model.mixer.type=gla");
  CHECK(cell(b, "adamw/attention/s/x2").ran == "model.mixer.type=attention");
  REQUIRE(b.fits.size() == 2);
  CHECK(b.fits[0].compare == "model.mixer.type=attention");
  CHECK(b.fits[1].compare == "model.mixer.type=gla");
  CHECK(b.fits[1].fit.beta == Approx(1.7).epsilon(1e-6));  // GLA's curve sits 0.2 higher
  CHECK(speedup(b, "muon/gla/s/x1").speedup == Approx(2.0).epsilon(1e-6));
  CHECK(speedup(b, "muon/gla/s/x1").compare == "model.mixer.type=gla");
  const auto tables = analysis::make_tables(b);
  CHECK(shown(tables, "cells", row_of(b, "muon/gla/s/x1"), "compare") == "model.mixer.type=gla");
}

TEST_CASE("points with more seeds are compared on the seeds they share", "[analysis][statistics][confirm]") {
  // A confirmed cell: seed 1 ran every point; lr 1e-3 and 2e-3 (within the band of seed 1's best)
  // also ran seeds 2 and 3, the other points did not (their trials are pending here, as an
  // unconfirmed point's are absent). On seed 1 alone lr 1e-3 is best; on three seeds lr 2e-3 is.
  // lr 3e-3's one seed (1.06) is below lr 2e-3's mean (1.0667) but outside the band: a plain mean
  // over each point's own seeds would call it best on one seed.
  const std::map<double, std::vector<double>> losses = {
      {1e-3, {1.00, 1.12, 1.12}}, {2e-3, {1.02, 1.09, 1.09}}, {3e-3, {1.06}}, {4e-3, {1.30}}};
  const auto write = [&](const std::string& name, const std::map<double, std::vector<double>>& by_lr) {
    const std::string text = R"(study: shared
base:
  task: {type: word_problem, group: Z3, seq_len: 8}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  train: {steps: 8, batch_size: 4, eval_every: 1000}
search: {strategy: grid, seeds: [1, 2, 3], space: {optimizer.lr: [1.0e-3, 2.0e-3, 3.0e-3, 4.0e-3]}}
sweep: {max_attempts: 1}
)";
    const fs::path dir = work_dir(name);
    fixture::write_sweep(dir, text, [&](const experiments::PlannedTrial& t) -> std::optional<fixture::Outcome> {
      const std::vector<double>& v = by_lr.at(t.config.optimizer.lr);
      if (t.seed > v.size()) return std::nullopt;
      fixture::Outcome o;
      o.loss = v[t.seed - 1];
      return o;
    });
    analysis::AnalysisOptions options;
    options.tolerance = 0.05;
    return analysis::analyze(analysis::load_sweep(dir), options);
  };
  const auto a = write("shared_seeds", losses);
  const auto& c = a.cells.at(0);
  CHECK(c.best.point == "optimizer.lr=2.0e-3");
  CHECK(c.best.loss == Approx((1.02 + 1.09 + 1.09) / 3).epsilon(1e-12));  // the mean over all its seeds
  CHECK(c.ranked_seeds == std::vector<std::int64_t>{1, 2, 3});
  CHECK(c.near_best == std::vector<std::string>{"optimizer.lr=2.0e-3", "optimizer.lr=1.0e-3"});
  CHECK(c.best_interval.method == "seeds");
  CHECK(c.best_interval.degenerate.empty());
  CHECK(c.best_interval.high > c.best_interval.low);
  // Ablation rows are paired: lr 3e-3 against the best on seed 1 (1.06 - 1.02), lr 1e-3 on 1..3.
  REQUIRE(c.ablation.size() == 3);
  CHECK(c.ablation[0].point == "optimizer.lr=1.0e-3");
  CHECK(c.ablation[0].delta == Approx((1.12 + 1.12 + 1.00 - 1.02 - 1.09 - 1.09) / 3).epsilon(1e-12));
  CHECK(c.ablation[1].point == "optimizer.lr=3.0e-3");
  CHECK(c.ablation[1].loss == Approx(1.06).epsilon(1e-12));
  CHECK(c.ablation[1].delta == Approx(0.04).epsilon(1e-9));
  const auto tables = analysis::make_tables(a);
  CHECK(shown(tables, "cells", 0, "ranked_seeds") == "3");
  CHECK(shown(tables, "cells", 0, "seeds") == "3");

  // A point inside the band with one seed: the band shares seed 1 only, so the best is chosen on
  // seed 1 (lr 1e-3) and reported with the mean over all of its seeds.
  auto with_unconfirmed = losses;
  with_unconfirmed[3e-3] = {1.01};
  const auto b = write("shared_seeds_band", with_unconfirmed);
  const auto& d = b.cells.at(0);
  CHECK(d.best.point == "optimizer.lr=1.0e-3");
  CHECK(d.ranked_seeds == std::vector<std::int64_t>{1});
  CHECK(d.best.loss == Approx((1.00 + 1.12 + 1.12) / 3).epsilon(1e-12));
  CHECK(d.near_best == std::vector<std::string>{"optimizer.lr=1.0e-3", "optimizer.lr=3.0e-3", "optimizer.lr=2.0e-3"});
}
