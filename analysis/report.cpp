#include "analysis/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <tuple>

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

namespace {

// The states of the cells table's count columns: the coordinator's five, then any other state a
// sweep holds (in name order), each its own column named in lower case.
std::vector<std::string> state_columns(const Analysis& a) {
  std::vector<std::string> states = {"COMPLETED", "DIVERGED", "FAILED", "pending", "running"};
  for (const CellResult& c : a.cells)
    for (const auto& [state, n] : c.state_counts)
      if (std::find(states.begin(), states.end(), state) == states.end()) states.push_back(state);
  return states;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_compare(const Analysis& a) {
  return std::any_of(a.cells.begin(), a.cells.end(), [](const CellResult& c) { return !c.info.compare.empty(); });
}

}  // namespace

std::vector<Table> make_tables(const Analysis& a) {
  using V = Value;
  std::vector<Table> tables;
  const auto ratio = [](double r) { return V::num(r, "{:g}"); };
  const Metric& m = a.metric;
  const std::string best_col = "best_" + m.name;
  const auto value = [&m](double ranked) { return V::num(m.value(ranked)); };
  const bool compare = has_compare(a);
  // The leading columns of a cell: optimizer, the compared values (with compare), model.
  const auto lead = [compare](std::vector<std::string> rest) {
    std::vector<std::string> cols = {"optimizer"};
    if (compare) cols.push_back("compare");
    cols.push_back("model");
    cols.insert(cols.end(), rest.begin(), rest.end());
    return cols;
  };
  const auto lead_values = [compare](const std::string& opt, const std::string& cmp, const std::string& model) {
    std::vector<Value> v = {V::str(opt)};
    if (compare) v.push_back(V::str(cmp));
    v.push_back(V::str(model));
    return v;
  };
  // An interval in the metric's units, or why it has none.
  const auto interval = [&m](std::vector<Value>& row, const Interval& in, const char* spec, bool ranked_units) {
    if (in.replicates == 0) {
      row.insert(row.end(), {V::none(), V::none(), V::none()});
      return;
    }
    if (!in.degenerate.empty()) {
      row.insert(row.end(), {V::str(in.degenerate), V::none(), V::str(in.method)});
      return;
    }
    double lo = in.low, hi = in.high;
    if (ranked_units && m.higher_is_better) std::tie(lo, hi) = std::make_pair(m.value(in.high), m.value(in.low));
    row.insert(row.end(), {V::num(lo, spec), V::num(hi, spec), V::str(in.method)});
  };

  const std::vector<std::string> states = state_columns(a);
  std::vector<std::string> cell_cols =
      lead({"ratio", "ran", "tokens", "best_point", best_col, "seeds", "ranked_seeds", "seed_sd", "seed_min",
            "seed_max", "seed_values", "ci_low", "ci_high", "ci_method", "near_best_n", "near_best"});
  for (const std::string& st : states) cell_cols.push_back(lower(st));
  cell_cols.insert(cell_cols.end(), {"trials", "cpu_s", "tokens_spent", "edge_warnings"});
  Table cells{"cells",
              fmt::format("Best configuration per cell (final eval {}, mean over seeds; {} is better)", m.name,
                          m.higher_is_better ? "higher" : "lower"),
              cell_cols,
              {}};
  for (const CellResult& c : a.cells) {
    std::vector<Value> row = lead_values(c.info.optimizer, c.info.compare_text(), c.info.model_tag);
    row.insert(row.end(),
               {ratio(c.info.data_ratio), V::str(c.ran), c.has_best ? V::num(c.best.tokens, "{:.0f}") : V::none(),
                c.has_best ? V::str(c.best.point) : V::none(), c.has_best ? value(c.best.loss) : V::none(),
                V::num(static_cast<double>(c.best.seed_losses.size()), "{:.0f}"),
                V::num(static_cast<double>(c.ranked_seeds.size()), "{:.0f}")});
    const SeedSpread spread = seed_spread(c.best.seed_losses);
    if (spread.n >= 2) {
      const double lo = m.higher_is_better ? m.value(spread.max) : spread.min;
      const double hi = m.higher_is_better ? m.value(spread.min) : spread.max;
      row.insert(row.end(), {V::num(spread.sd, "{:.4f}"), V::num(lo), V::num(hi)});
    } else {
      row.insert(row.end(), {V::none(), V::none(), V::none()});
    }
    std::string per_seed;
    for (std::size_t i = 0; i < c.best.seed_losses.size(); ++i)
      per_seed += fmt::format("{}seed {}: {}", i ? "; " : "", c.best.seeds[i], value(c.best.seed_losses[i]).display());
    row.push_back(V::str(per_seed));
    interval(row, c.best_interval, "{:.4f}", true);
    row.insert(row.end(), {V::num(static_cast<double>(c.near_best.size()), "{:.0f}"), V::str(join(c.near_best, "; "))});
    for (const std::string& st : states) {
      const auto it = c.state_counts.find(st);
      row.push_back(V::num(it == c.state_counts.end() ? 0 : it->second, "{:.0f}"));
    }
    row.insert(row.end(), {V::num(c.trials_finished, "{:.0f}"), V::num(c.cpu_s, "{:.1f}"),
                           V::num(static_cast<double>(c.tokens_spent), "{:.0f}"), V::str(join(c.edge_warnings, "; "))});
    cells.rows.push_back(std::move(row));
  }
  tables.push_back(std::move(cells));

  Table ablation{"ablation",
                 "One-at-a-time ablation around each cell's best point",
                 lead({"ratio", "axis", "value", m.name, "delta", "best_point"}),
                 {}};
  for (const CellResult& c : a.cells)
    for (const AblationRow& r : c.ablation) {
      std::vector<Value> row = lead_values(c.info.optimizer, c.info.compare_text(), c.info.model_tag);
      const double delta = m.higher_is_better ? -r.delta : r.delta;  // in the metric's units
      row.insert(row.end(), {ratio(c.info.data_ratio), V::str(r.axis), V::str(r.value), value(r.loss),
                             V::num(delta, "{:+.4f}"), V::str(c.best.point)});
      ablation.rows.push_back(std::move(row));
    }
  tables.push_back(std::move(ablation));

  Table budget{"budget",
               "Tuning budget per optimizer (finished trials, and what PRUNED trials trained)",
               {"optimizer", "trials", "cpu_s", "tokens"},
               {}};
  for (const BudgetRow& b : a.budget)
    budget.rows.push_back({V::str(b.optimizer), V::num(b.trials, "{:.0f}"), V::num(b.cpu_s, "{:.1f}"),
                           V::num(static_cast<double>(b.tokens), "{:.0f}")});
  tables.push_back(std::move(budget));

  if (!a.fits.empty()) {
    const std::string fitted = m.higher_is_better ? "1 - " + m.name : m.name;
    const auto group_cols = [compare](std::vector<std::string> rest) {
      std::vector<std::string> cols;
      if (compare) cols.push_back("compare");
      cols.push_back("model");
      cols.insert(cols.end(), rest.begin(), rest.end());
      return cols;
    };
    const auto group_values = [compare](const FitResult& f) {
      std::vector<Value> v;
      if (compare) v.push_back(V::str(f.compare));
      v.push_back(V::str(f.model_tag));
      return v;
    };
    Table fit{"fit",
              fmt::format("Baseline fit L(D) = alpha * D^-B + beta of {} (D in tokens; 3 parameters)", fitted),
              group_cols({"optimizer", "points", "dof", "alpha", "B", "beta", "rss", "status"}),
              {}};
    Table residuals{"residuals",
                    "Fit residuals (L - fitted); none for an interpolation, zero by construction",
                    group_cols({"ratio", "D", "L", "fitted", "residual"}),
                    {}};
    for (const FitResult& f : a.fits) {
      const bool ok = f.fit.ok;
      std::vector<Value> row = group_values(f);
      row.insert(row.end(),
                 {V::str(a.options.baseline), V::num(f.fit.n_points, "{:.0f}"),
                  ok ? V::num(f.degrees_of_freedom, "{:.0f}") : V::none(),
                  ok ? V::num(f.fit.alpha, "{:.6g}") : V::none(), ok ? V::num(f.fit.exponent, "{:.6g}") : V::none(),
                  ok ? V::num(f.fit.beta, "{:.6g}") : V::none(), ok ? V::num(f.fit.rss, "{:.3g}") : V::none(),
                  V::str(!ok                         ? f.fit.message
                         : f.interpolation           ? "interpolation (0 degrees of freedom)"
                         : f.degrees_of_freedom == 0 ? "compromise: no curve passes through the points"
                                                     : "ok")});
      fit.rows.push_back(std::move(row));
      if (!ok) continue;
      for (std::size_t i = 0; i < f.d.size(); ++i) {
        std::vector<Value> r = group_values(f);
        r.insert(r.end(),
                 {ratio(f.ratios[i]), V::num(f.d[i], "{:.0f}"), V::num(f.loss[i]), V::num(f.fit.predict(f.d[i])),
                  f.interpolation ? V::str("n/a (interpolation)") : V::num(f.fit.residuals[i], "{:+.2e}")});
        residuals.rows.push_back(std::move(r));
      }
    }
    tables.push_back(std::move(fit));
    tables.push_back(std::move(residuals));

    const std::string level = fmt::format("{:g}", 100 * a.options.confidence);
    Table speedup{"speedup",
                  fmt::format("Speedup over {} at the ratios it ran: D_eff / D in tokens ({}% bootstrap interval), "
                              "and in compute and wall-clock",
                              a.options.baseline, level),
                  lead({"ratio", "D", m.name, "D_eff", "speedup", "ci_low", "ci_high", "ci_method", "compute_speedup",
                        "wall_speedup", "extrapolated", "flag"}),
                  {}};
    for (const SpeedupRow& r : a.speedups) {
      std::vector<Value> row = lead_values(r.optimizer, r.compare, r.model_tag);
      row.insert(row.end(),
                 {ratio(r.data_ratio), r.d > 0 ? V::num(r.d, "{:.0f}") : V::none(),
                  std::isnan(r.loss) ? V::none() : value(r.loss), r.available ? V::num(r.d_eff, "{:.0f}") : V::none(),
                  r.available ? V::num(r.speedup, "{:.3f}") : V::none()});
      Interval in;
      if (r.available) in = Interval{r.ci_low, r.ci_high, r.ci_method, r.ci_replicates, r.ci_degenerate};
      interval(row, in, "{:.3f}", false);
      const auto cost = [&](double x) { return r.available && std::isfinite(x) ? V::num(x, "{:.3f}") : V::none(); };
      row.insert(row.end(), {cost(r.compute_speedup), cost(r.wall_speedup),
                             r.available ? V::str(r.extrapolated ? "yes" : "no") : V::none(), V::str(r.flag)});
      speedup.rows.push_back(std::move(row));
    }
    tables.push_back(std::move(speedup));
  }

  if (a.options.target) {
    Table target{"target",
                 fmt::format("Steps to target eval {} {:g} (one-sided z-test on each point's seed spread, --sigma {:g} "
                             "for one seed, alpha {:g})",
                             m.name, *a.options.target, a.options.sigma, a.options.alpha_test),
                 lead({"ratio", "point", "seeds", "steps_to_target", "tokens_to_target", "mean_final", "sigma",
                       "sigma_source", "z", "p_value", "significant"}),
                 {}};
    for (const TargetRow& r : a.targets) {
      std::vector<Value> row = lead_values(r.optimizer, "", r.model_tag);
      if (compare)
        for (const CellResult& c : a.cells)
          if (c.info.name == r.cell) row[1] = V::str(c.info.compare_text());
      row.insert(row.end(),
                 {ratio(r.data_ratio), V::str(r.point), V::num(r.seeds, "{:.0f}"),
                  r.reached ? V::num(static_cast<double>(r.steps_to_target), "{:.0f}") : V::str("not reached"),
                  r.reached ? V::num(static_cast<double>(r.tokens_to_target), "{:.0f}") : V::str("not reached"),
                  value(r.mean_final), V::num(r.sigma, "{:.4g}"), V::str(r.sigma_source), V::num(r.z, "{:.2f}"),
                  V::num(r.p_value, "{:.3g}"), V::str(r.significant ? "yes" : "no")});
      target.rows.push_back(std::move(row));
    }
    tables.push_back(std::move(target));
  }
  return tables;
}

std::string summary(const Analysis& a, const std::vector<Table>& tables) {
  const auto table = [&](const std::string& name) -> const Table* {
    for (const Table& t : tables)
      if (t.name == name) return &t;
    return nullptr;
  };
  // The display text of a row's column ("" when the table has no such column).
  const auto at = [](const Table& t, std::size_t r, const std::string& column) {
    for (std::size_t c = 0; c < t.columns.size(); ++c)
      if (t.columns[c] == column) return t.rows[r][c].display();
    return std::string();
  };
  const auto who = [&](const Table& t, std::size_t r) {
    const std::string cmp = at(t, r, "compare");
    return cmp.empty() ? at(t, r, "optimizer") + " on " + at(t, r, "model")
                       : at(t, r, "optimizer") + " (" + cmp + ") on " + at(t, r, "model");
  };
  const Metric& m = a.metric;
  std::string s =
      fmt::format("Study {} (final eval {}, {} is better{}).", a.study, m.name, m.higher_is_better ? "higher" : "lower",
                  !a.partial  ? ""
                  : a.running ? "; the sweep is still running"
                              : "; the sweep stopped before all its trials finished");
  const Table* speedup = table("speedup");
  const Table* cells = table("cells");
  if (speedup != nullptr) {
    std::vector<std::string> parts;
    for (std::size_t r = 0; r < speedup->rows.size(); ++r) {
      if (at(*speedup, r, "optimizer") == a.options.baseline) continue;
      const std::string head = fmt::format("{} at ratio {}", who(*speedup, r), at(*speedup, r, "ratio"));
      const std::string x = at(*speedup, r, "speedup");
      if (x == "-") {
        parts.push_back(fmt::format("{}: no speedup ({})", head, at(*speedup, r, "flag")));
        continue;
      }
      const std::string lo = at(*speedup, r, "ci_low"), hi = at(*speedup, r, "ci_high");
      const std::string ci = lo.rfind("n/a", 0) == 0 ? "interval " + lo
                             : lo == "-"
                                 ? "no interval"
                                 : fmt::format("interval {} to {} over {}", lo, hi, at(*speedup, r, "ci_method"));
      std::string part = fmt::format("{}: {}x the tokens of {} ({})", head, x, a.options.baseline, ci);
      const std::string compute = at(*speedup, r, "compute_speedup"), wall = at(*speedup, r, "wall_speedup");
      if (compute != "-") part += fmt::format(", {}x in compute", compute);
      if (wall != "-") part += fmt::format(", {}x in wall-clock", wall);
      if (at(*speedup, r, "extrapolated") == "yes") part += fmt::format(", EXTRAPOLATED ({})", at(*speedup, r, "flag"));
      parts.push_back(part);
    }
    if (!parts.empty()) s += " Speedup over " + a.options.baseline + ": " + join(parts, "; ") + ".";
  } else if (cells != nullptr) {
    std::vector<std::string> parts;
    for (std::size_t r = 0; r < cells->rows.size(); ++r) {
      const std::string best = at(*cells, r, "best_" + m.name);
      if (best == "-") continue;
      std::string part =
          fmt::format("{} best {} {} over {} seed(s)", who(*cells, r), m.name, best, at(*cells, r, "seeds"));
      if (at(*cells, r, "seed_sd") != "-")
        part += fmt::format(" (sd {}, from {} to {})", at(*cells, r, "seed_sd"), at(*cells, r, "seed_min"),
                            at(*cells, r, "seed_max"));
      parts.push_back(part);
    }
    if (!parts.empty()) s += " " + join(parts, "; ") + ".";
  }
  if (const Table* fit = table("fit")) {
    std::vector<std::string> parts;
    for (std::size_t r = 0; r < fit->rows.size(); ++r) {
      const std::string cmp = at(*fit, r, "compare");
      const std::string group = cmp.empty() ? at(*fit, r, "model") : cmp + " " + at(*fit, r, "model");
      const std::string dof = at(*fit, r, "dof");
      if (dof == "-") {
        parts.push_back(fmt::format("on {}: no fit ({})", group, at(*fit, r, "status")));
        continue;
      }
      const std::string status = at(*fit, r, "status");
      parts.push_back(fmt::format("on {}: {} points, {} degrees of freedom{}", group, at(*fit, r, "points"), dof,
                                  status == "ok" ? ""
                                  : status.rfind("interpolation", 0) == 0
                                      ? " (an interpolation: its residuals test nothing)"
                                      : " (" + status + ")"));
    }
    if (!parts.empty()) s += " " + a.options.baseline + "'s fit " + join(parts, "; ") + ".";
  }
  if (cells != nullptr) {
    std::vector<std::string> edge, mixed;
    for (std::size_t r = 0; r < cells->rows.size(); ++r)
      if (!at(*cells, r, "edge_warnings").empty()) edge.push_back(a.cells[r].info.name);
    for (const CellResult& c : a.cells)
      if (c.mixed) mixed.push_back(c.info.name);
    if (!edge.empty()) s += " Best value at a grid edge (the optimum may lie beyond it): " + join(edge, ", ") + ".";
    if (!mixed.empty()) s += " Cells whose trials ran different configurations: " + join(mixed, ", ") + ".";
  }
  return s;
}

std::string provenance(const Analysis& a) {
  return fmt::format("expt {}, trial ids of config schema {}", a.expt_commit, a.config_schema);
}

std::string render_text(const Analysis& a, const std::vector<Table>& tables) {
  std::string s = fmt::format("study {} ({}), {}: {} of {} trials finished, tolerance {:g}\n{}\n", a.study, a.strategy,
                              a.dir, a.trials_finished, a.trials_total, a.tolerance, provenance(a));
  for (const std::string& n : a.notes) s += "note: " + n + "\n";
  s += "\nSummary: " + summary(a, tables) + "\n";
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
  s += "\n## Summary\n\n" + md_escape(summary(a, tables)) + "\n";
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
              {"running", a.running},
              {"metric", a.metric.name},
              {"higher_is_better", a.metric.higher_is_better},
              {"notes", a.notes},
              {"summary", summary(a, tables)}};
  json t_out = json::object(), titles = json::array();
  for (const Table& t : tables) {
    titles.push_back({{"name", t.name}, {"title", t.title}, {"columns", t.columns}});
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
  // The tables in the terminal's order, with its headings and column order (the rows' objects have
  // their keys sorted).
  out["titles"] = std::move(titles);
  out["tables"] = std::move(t_out);
  return out.dump(1) + "\n";
}

}  // namespace expt::analysis
