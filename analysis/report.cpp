#include "analysis/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace expt::analysis {

namespace {

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

std::string number_text(double v, const char* spec) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format(fmt::runtime(spec), v);
}

// A CSV field, quoted when it holds a separator, a quote or a newline.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string Value::display() const {
  switch (kind) {
    case Kind::text:
      return text;
    case Kind::number:
      return number_text(number, format);
    case Kind::missing:
      return "-";
  }
  return "";
}

std::string Value::csv() const {
  switch (kind) {
    case Kind::text:
      return csv_field(text);
    case Kind::number:
      return number_text(number, "{:.17g}");
    case Kind::missing:
      return "";
  }
  return "";
}

std::vector<Table> make_tables(const Analysis& a) {
  using V = Value;
  std::vector<Table> tables;
  const auto ratio = [](double r) { return V::num(r, "{:g}"); };

  Table cells{
      "cells",
      "Best configuration per cell (final eval loss, mean over seeds)",
      {"optimizer", "model", "ratio", "tokens", "best_point", "best_loss", "seeds", "near_best_n", "near_best",
       "completed", "diverged", "failed", "pending", "running", "trials", "cpu_s", "tokens_spent", "edge_warnings"},
      {}};
  for (const CellResult& c : a.cells) {
    cells.rows.push_back({V::str(c.info.optimizer), V::str(c.info.model_tag), ratio(c.info.data_ratio),
                          c.has_best ? V::num(c.best.tokens, "{:.0f}") : V::none(),
                          c.has_best ? V::str(c.best.point) : V::none(), c.has_best ? V::num(c.best.loss) : V::none(),
                          V::num(static_cast<double>(c.best.seed_losses.size()), "{:.0f}"),
                          V::num(static_cast<double>(c.near_best.size()), "{:.0f}"), V::str(join(c.near_best, "; ")),
                          V::num(c.completed, "{:.0f}"), V::num(c.diverged, "{:.0f}"), V::num(c.failed, "{:.0f}"),
                          V::num(c.pending, "{:.0f}"), V::num(c.running, "{:.0f}"), V::num(c.trials_finished, "{:.0f}"),
                          V::num(c.cpu_s, "{:.1f}"), V::num(static_cast<double>(c.tokens_spent), "{:.0f}"),
                          V::str(join(c.edge_warnings, "; "))});
  }
  tables.push_back(std::move(cells));

  Table ablation{"ablation",
                 "One-at-a-time ablation around each cell's best point",
                 {"optimizer", "model", "ratio", "axis", "value", "loss", "delta", "best_point"},
                 {}};
  for (const CellResult& c : a.cells)
    for (const AblationRow& r : c.ablation)
      ablation.rows.push_back({V::str(c.info.optimizer), V::str(c.info.model_tag), ratio(c.info.data_ratio),
                               V::str(r.axis), V::str(r.value), V::num(r.loss), V::num(r.delta, "{:+.4f}"),
                               V::str(c.best.point)});
  tables.push_back(std::move(ablation));

  Table budget{
      "budget", "Tuning budget per optimizer (finished trials)", {"optimizer", "trials", "cpu_s", "tokens"}, {}};
  for (const BudgetRow& b : a.budget)
    budget.rows.push_back({V::str(b.optimizer), V::num(b.trials, "{:.0f}"), V::num(b.cpu_s, "{:.1f}"),
                           V::num(static_cast<double>(b.tokens), "{:.0f}")});
  tables.push_back(std::move(budget));

  if (!a.fits.empty()) {
    Table fit{"fit",
              "Baseline fit L(D) = alpha * D^-B + beta per model size (D in tokens)",
              {"model", "optimizer", "points", "alpha", "B", "beta", "rss", "status"},
              {}};
    Table residuals{
        "residuals", "Fit residuals (loss - fitted)", {"model", "ratio", "D", "loss", "fitted", "residual"}, {}};
    for (const FitResult& f : a.fits) {
      const bool ok = f.fit.ok;
      fit.rows.push_back({V::str(f.model_tag), V::str(a.options.baseline), V::num(f.fit.n_points, "{:.0f}"),
                          ok ? V::num(f.fit.alpha, "{:.6g}") : V::none(),
                          ok ? V::num(f.fit.exponent, "{:.6g}") : V::none(),
                          ok ? V::num(f.fit.beta, "{:.6g}") : V::none(), ok ? V::num(f.fit.rss, "{:.3g}") : V::none(),
                          V::str(ok ? "ok" : f.fit.message)});
      if (!ok) continue;
      for (std::size_t i = 0; i < f.d.size(); ++i)
        residuals.rows.push_back({V::str(f.model_tag), ratio(f.ratios[i]), V::num(f.d[i], "{:.0f}"), V::num(f.loss[i]),
                                  V::num(f.fit.predict(f.d[i])), V::num(f.fit.residuals[i], "{:+.2e}")});
    }
    tables.push_back(std::move(fit));
    tables.push_back(std::move(residuals));

    const std::string level = fmt::format("{:g}", 100 * a.options.confidence);
    Table speedup{
        "speedup",
        fmt::format("Speedup over {}: D_eff / D ({}% bootstrap interval)", a.options.baseline, level),
        {"optimizer", "model", "ratio", "D", "loss", "D_eff", "speedup", "ci_low", "ci_high", "ci_method", "flag"},
        {}};
    for (const SpeedupRow& r : a.speedups)
      speedup.rows.push_back(
          {V::str(r.optimizer), V::str(r.model_tag), ratio(r.data_ratio), r.d > 0 ? V::num(r.d, "{:.0f}") : V::none(),
           std::isnan(r.loss) ? V::none() : V::num(r.loss), r.available ? V::num(r.d_eff, "{:.0f}") : V::none(),
           r.available ? V::num(r.speedup, "{:.3f}") : V::none(),
           r.available && r.ci_replicates > 0 ? V::num(r.ci_low, "{:.3f}") : V::none(),
           r.available && r.ci_replicates > 0 ? V::num(r.ci_high, "{:.3f}") : V::none(),
           r.available ? V::str(r.ci_method) : V::none(), V::str(r.flag)});
    tables.push_back(std::move(speedup));
  }

  if (a.options.target) {
    Table target{"target",
                 fmt::format("Steps to target eval loss {:g} (one-sided z-test, sigma {:g}, alpha {:g})",
                             *a.options.target, a.options.sigma, a.options.alpha_test),
                 {"optimizer", "model", "ratio", "point", "seeds", "steps_to_target", "tokens_to_target", "mean_final",
                  "z", "p_value", "significant"},
                 {}};
    for (const TargetRow& r : a.targets)
      target.rows.push_back(
          {V::str(r.optimizer), V::str(r.model_tag), ratio(r.data_ratio), V::str(r.point), V::num(r.seeds, "{:.0f}"),
           r.reached ? V::num(static_cast<double>(r.steps_to_target), "{:.0f}") : V::str("not reached"),
           r.reached ? V::num(static_cast<double>(r.tokens_to_target), "{:.0f}") : V::str("not reached"),
           V::num(r.mean_final), V::num(r.z, "{:.2f}"), V::num(r.p_value, "{:.3g}"),
           V::str(r.significant ? "yes" : "no")});
    tables.push_back(std::move(target));
  }
  return tables;
}

std::string provenance(const Analysis& a) {
  return fmt::format("expt {}, trial ids of config schema {}", a.expt_commit, a.config_schema);
}

std::string render_text(const Analysis& a, const std::vector<Table>& tables) {
  std::string s = fmt::format("study {} ({}), {}: {} of {} trials finished, tolerance {:g}\n{}\n", a.study, a.strategy,
                              a.dir, a.trials_finished, a.trials_total, a.tolerance, provenance(a));
  for (const std::string& n : a.notes) s += "note: " + n + "\n";
  for (const Table& t : tables) {
    s += "\n" + t.title + "\n";
    if (t.rows.empty()) {
      s += "  (none)\n";
      continue;
    }
    std::vector<std::size_t> width(t.columns.size());
    for (std::size_t c = 0; c < t.columns.size(); ++c) width[c] = t.columns[c].size();
    for (const auto& row : t.rows)
      for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].display().size());
    const auto line = [&](const auto& cell_text) {
      std::string l = " ";
      for (std::size_t c = 0; c < t.columns.size(); ++c) {
        const std::string text = cell_text(c);
        l += " " + text + std::string(width[c] - text.size(), ' ');
      }
      while (!l.empty() && l.back() == ' ') l.pop_back();
      return l + "\n";
    };
    s += line([&](std::size_t c) { return t.columns[c]; });
    for (const auto& row : t.rows) s += line([&](std::size_t c) { return row[c].display(); });
  }
  return s;
}

std::string render_markdown(const Analysis& a, const std::vector<Table>& tables) {
  std::string s =
      fmt::format("# Analysis of study `{}`\n\n{} ({}): {} of {} trials finished, tolerance {:g}; {}.\n", a.study,
                  a.dir, a.strategy, a.trials_finished, a.trials_total, a.tolerance, md_escape(provenance(a)));
  for (const std::string& n : a.notes) s += "\n- " + md_escape(n);
  if (!a.notes.empty()) s += "\n";
  for (const Table& t : tables) {
    s += "\n## " + t.title + "\n\n";
    if (t.rows.empty()) {
      s += "(none)\n";
      continue;
    }
    s += "|";
    for (const auto& c : t.columns) s += " " + c + " |";
    s += "\n|";
    for (std::size_t c = 0; c < t.columns.size(); ++c) s += "---|";
    s += "\n";
    for (const auto& row : t.rows) {
      s += "|";
      for (const Value& v : row) {
        s += ' ';
        s += md_escape(v.display());
        s += " |";
      }
      s += "\n";
    }
  }
  return s;
}

std::string render_csv(const Analysis& a, const Table& table) {
  std::string s = "# " + provenance(a) + "\n";
  for (std::size_t c = 0; c < table.columns.size(); ++c) s += (c ? "," : "") + table.columns[c];
  s += "\n";
  for (const auto& row : table.rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (c > 0) s += ',';
      s += row[c].csv();
    }
    s += "\n";
  }
  return s;
}

std::string render_csv_all(const Analysis& a, const std::vector<Table>& tables) {
  std::string s;
  for (const Table& t : tables) s += "# " + t.name + "\n" + render_csv(a, t) + "\n";
  return s;
}

std::string render_json(const Analysis& a, const std::vector<Table>& tables) {
  using nlohmann::json;
  json out = {{"study", a.study},
              {"strategy", a.strategy},
              {"dir", a.dir},
              {"expt_commit", a.expt_commit},
              {"config_schema", a.config_schema},
              {"tolerance", a.tolerance},
              {"baseline", a.options.baseline},
              {"trials_total", a.trials_total},
              {"trials_finished", a.trials_finished},
              {"partial", a.partial},
              {"notes", a.notes}};
  json t_out = json::object();
  for (const Table& t : tables) {
    json rows = json::array();
    for (const auto& row : t.rows) {
      json r = json::object();
      for (std::size_t c = 0; c < row.size(); ++c) {
        const Value& v = row[c];
        if (v.kind == Value::Kind::text)
          r[t.columns[c]] = v.text;
        else if (v.kind == Value::Kind::missing || std::isnan(v.number))
          r[t.columns[c]] = nullptr;
        else if (std::isinf(v.number))
          r[t.columns[c]] = v.number > 0 ? "inf" : "-inf";
        else
          r[t.columns[c]] = v.number;
      }
      rows.push_back(std::move(r));
    }
    t_out[t.name] = std::move(rows);
  }
  out["tables"] = std::move(t_out);
  return out.dump(1) + "\n";
}

}  // namespace expt::analysis
