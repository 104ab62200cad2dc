// The analysis as tables, rendered as a terminal table, CSV, Markdown or JSON (docs/analysis.md).
// Every format is rendered from the same Table values, so they agree: the terminal and Markdown
// show a number with its column's format, CSV with 17 significant digits, JSON as a JSON number
// (+inf as the string "inf", a missing value as null).
#pragma once

#include <string>
#include <vector>

#include "analysis/analysis.hpp"

namespace expt::analysis {

struct Value {
  enum class Kind { text, number, missing };
  Kind kind = Kind::missing;
  std::string text;
  double number = 0;
  const char* format = "{:.4f}";  // fmt spec for the terminal and Markdown
  static Value str(std::string s) { return Value{Kind::text, std::move(s), 0, ""}; }
  static Value num(double v, const char* fmt_spec = "{:.4f}") { return Value{Kind::number, "", v, fmt_spec}; }
  static Value none() { return Value{}; }
  std::string display() const;  // terminal / Markdown text
  std::string csv() const;      // full precision
};

struct Table {
  std::string name;   // file stem: cells, ablation, budget, fit, residuals, speedup, target
  std::string title;  // heading
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

std::vector<Table> make_tables(const Analysis& a);

// One plain-language paragraph on the study, every number in it the display text of a table cell:
// the speedups (with their interval or why there is none, compute and wall-clock, and EXTRAPOLATED
// where D_eff lies outside the fit), or without scales each cell's best value and seed spread; the
// fits' degrees of freedom; cells at a grid edge; cells whose trials ran different configurations.
std::string summary(const Analysis& a, const std::vector<Table>& tables);

std::string render_text(const Analysis& a, const std::vector<Table>& tables);
std::string render_markdown(const Analysis& a, const std::vector<Table>& tables);
// "expt <commit>, trial ids of config schema <n>": the first line of the text, Markdown and CSV
// outputs (JSON: the fields expt_commit and config_schema).
std::string provenance(const Analysis& a);
std::string render_csv(const Analysis& a, const Table& table);  // the provenance line as a `# ` comment first
std::string render_csv_all(const Analysis& a, const std::vector<Table>& tables);  // "# name" before each table
std::string render_json(const Analysis& a, const std::vector<Table>& tables);

}  // namespace expt::analysis
