#include "analysis/analyze_command.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <filesystem>

#include "analysis/report.hpp"
#include "core/io/atomic_file.hpp"
#include "experiments/cli/exit_codes.hpp"

namespace expt::analysis {

namespace fs = std::filesystem;

void add_analyze_options(CLI::App& command, AnalyzeCommandArgs& args) {
  AnalysisOptions& o = args.options;
  command.add_option("dir", args.dir, "Sweep output directory")->required()->check(CLI::ExistingDirectory);
  command.add_option("--format", args.format, "Output on stdout (every format is also written under DIR/analysis/)")
      ->check(CLI::IsMember({"table", "csv", "markdown", "json"}));
  command
      .add_option_function<double>(
          "--tolerance", [&o](const double& t) { o.tolerance = t; },
          "Near-best band above the best loss (default: the study's search.tolerance)")
      ->check(CLI::NonNegativeNumber);
  command.add_option("--metric", o.metric,
                     "Eval column ranked and reported (loss, token_acc, seq_acc, or a whole name such as "
                     "seq_acc@64; default loss); a name holding \"acc\" is higher-is-better");
  command.add_option("--baseline", o.baseline, "Optimizer whose data-scaling fit defines D_eff (default adamw)");
  command.add_option("--bootstrap", o.bootstrap_samples, "Bootstrap replicates of the speedup interval (0: none)")
      ->check(CLI::Range(0, 100000));
  command.add_option_function<double>(
      "--target", [&o](const double& t) { o.target = t; },
      "Target eval loss: adds steps/tokens to target and the z-test");
  command
      .add_option("--sigma", o.sigma,
                  "z-test of a point with one seed: standard deviation of one run's final value (default 0.0013); "
                  "points with seeds use their own")
      ->check(CLI::PositiveNumber);
}

int analyze_command(const AnalyzeCommandArgs& args, std::ostream& out) {
  Analysis a;
  std::vector<Table> tables;
  try {
    a = analyze(load_sweep(args.dir), args.options);
    tables = make_tables(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt analyze: %s\n", e.what());
    return experiments::kExitFailed;
  }
  const std::string text = render_text(a, tables), markdown = render_markdown(a, tables), json = render_json(a, tables);
  if (args.format == "csv")
    out << render_csv_all(a, tables);
  else if (args.format == "markdown")
    out << markdown;
  else if (args.format == "json")
    out << json;
  else
    out << text;
  out.flush();

  const fs::path dest = fs::path(args.dir) / "analysis";
  try {
    fs::create_directories(dest);
    io::write_file_atomic(dest / "analysis.txt", text);
    io::write_file_atomic(dest / "analysis.md", markdown);
    io::write_file_atomic(dest / "analysis.json", json);
    for (const char* name : {"cells", "ablation", "budget", "fit", "residuals", "speedup", "target"}) {
      const Table* t = nullptr;
      for (const Table& x : tables)
        if (x.name == name) t = &x;
      if (t != nullptr)
        io::write_file_atomic(dest / (std::string(name) + ".csv"), render_csv(a, *t));
      else
        fs::remove(dest / (std::string(name) + ".csv"));  // a table of an earlier run with other options
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt analyze: could not write %s: %s\n", dest.string().c_str(), e.what());
    return experiments::kExitFailed;
  }
  std::fprintf(stderr, "expt analyze: tables written to %s/\n", dest.string().c_str());
  return experiments::kExitOk;
}

}  // namespace expt::analysis
