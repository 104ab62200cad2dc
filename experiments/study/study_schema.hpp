// The study file's keys as declarative tables (core/config/schema.hpp), as the trial config's are
// (docs/decisions.md 6): each key is one row with its reader, domain and documentation, and
// docs/sweeps.md's key table is generated from the rows (tests/experiments/study_docs_test.cpp
// keeps the two equal). What no single key can check (a missing key, a key of another strategy,
// the axes, which need the strategy and whether there are scales) parse_study checks after the
// tables have read the file (experiments/study/study.cpp).
#pragma once

#include <string>

#include "core/config/schema.hpp"
#include "experiments/study/study.hpp"

namespace expt::experiments {

// What the study tables read: the Study, and what parse_study checks once every key is read.
struct StudyReading : Study {
  bool have_scales = false;            // the file has a scales section (set before reading)
  std::string strategy_text = "grid";  // search.strategy as written (the search table's selector)
  bool strategy_ok = false;            // search.strategy was given and is valid
  bool have_seeds = false;             // search.seeds was given
  bool data_ratios_given = false;
  bool models_given = false;
  const config::YamlNode* space_node = nullptr;       // search.space, read once the strategy is known
  const config::YamlNode* optimizers_node = nullptr;  // search.optimizers, read after space
  const config::YamlNode* compare_node = nullptr;     // compare, read once the axes are known
  const config::YamlNode* confirm_node = nullptr;     // search.confirm, checked once the seeds are known
  const config::YamlNode* confirm_seeds_node = nullptr;
  const config::YamlNode* halving_node = nullptr;  // search.halving, checked once branching is known
  const config::YamlNode* halving_keep_node = nullptr;
};

// One entry of search.optimizers: the optimizer's own base keys and axes.
struct OptimizerSearchReading {
  config::YamlNode base;
  const config::YamlNode* space = nullptr;
};

// An axis range {min, max, num, log}.
struct RangeReading {
  const config::YamlNode* min = nullptr;
  const config::YamlNode* max = nullptr;
  double min_value = 0, max_value = 0;
  bool log = false;
  bool num_given = false;
  int num = 0;
  bool ok = true;  // every given key was read
};

const config::schema::Table<StudyReading>& study_table();
const config::schema::Table<OptimizerSearchReading>& optimizer_search_table();
const config::schema::Table<RangeReading>& range_table();

// The key table of docs/sweeps.md, between its marker comments.
std::string study_schema_markdown();

}  // namespace expt::experiments
