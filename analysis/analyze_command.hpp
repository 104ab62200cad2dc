// `expt analyze DIR [--format table|csv|markdown|json] [--tolerance T] [--baseline adamw]
//  [--bootstrap N] [--target L [--sigma S]]`: the study's answer from a sweep directory
// (docs/analysis.md). Prints the chosen format and writes every format under DIR/analysis/
// (analysis.txt, analysis.md, analysis.json, one <table>.csv per table), each replaced by rename.
// Exit codes: 0 done, 1 the sweep could not be read or the files not written, 2 usage.
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "analysis/analysis.hpp"

namespace CLI {
class App;
}

namespace expt::analysis {

struct AnalyzeCommandArgs {
  std::string dir;
  std::string format = "table";  // table | csv | markdown | json
  AnalysisOptions options;
};

// Registers DIR and the options above on the `analyze` subcommand (experiments/cli/cli.cpp).
void add_analyze_options(CLI::App& command, AnalyzeCommandArgs& args);

int analyze_command(const AnalyzeCommandArgs& args, std::ostream& out);

}  // namespace expt::analysis
