// Canonical YAML: every default filled, schema order, floats `d.ddde±XX` with the shortest
// mantissa that round-trips, strings plain only when safe; parse(emit(cfg)) == cfg exactly.
#include <unistd.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include "config_test_util.hpp"
#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/config/trial_schema.hpp"

using expt::config::flatten_config;
using expt::config::format_double;
using expt::config::format_string;
using expt::config::parse_trial_config;
using expt::config::to_canonical_yaml;
using expt::config::TrialConfig;
using expt::config::test::check_same_config;
using expt::config::test::same_bits;

namespace {

// Whether s matches -?[0-9]+\.[0-9]+e[+-][0-9]{2,max_exponent_digits}: the float spelling the
// issue fixes (two-digit exponents; |exponent| >= 100 needs three). Written out rather than with
// std::regex, which GCC 12 cannot compile warning-free under the sanitizers.
bool is_canonical_float(const std::string& s, std::size_t max_exponent_digits = 2) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (digits() == 0 || i >= s.size() || s[i++] != '.') return false;
  if (digits() == 0 || i >= s.size() || s[i++] != 'e') return false;
  if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return false;
  ++i;
  const std::size_t exponent_digits = digits();
  return exponent_digits >= 2 && exponent_digits <= max_exponent_digits && i == s.size();
}

TrialConfig round_trip(const TrialConfig& cfg) { return parse_trial_config(to_canonical_yaml(cfg), "canonical.yaml"); }

// Keys whose type is float, from the schema's own documentation rows.
std::vector<std::string> float_keys() {
  std::vector<expt::config::schema::DocRow> rows;
  expt::config::trial_table().describe("", rows);
  std::vector<std::string> keys;
  for (const auto& row : rows)
    if (row.type == "float") keys.push_back(row.path);
  return keys;
}

// Number of significant digits in the mantissa of "d.ddde±XX".
int mantissa_digits(const std::string& s) {
  int n = 0;
  for (char c : s.substr(0, s.find('e')))
    if (c >= '0' && c <= '9') ++n;
  return n;
}

// Fewest significant digits with which printf's correctly rounded %e reads back as x.
int printf_shortest_digits(double x) {
  for (int digits = 1; digits <= 17; ++digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*e", digits - 1, x);
    if (same_bits(std::strtod(buf, nullptr), x)) return digits;
  }
  return 17;
}

}  // namespace

TEST_CASE("the default config emits every key in schema order with canonical scalars", "[config][canonical]") {
  // Written by hand from trial_config.hpp's defaults and the issue's format rules. Keys that do not
  // apply to the default types are absent: schedule.min_lr_ratio and schedule.decay (constant).
  const std::string expected =
      "seed: 0\n"
      "task:\n"
      "  type: word_problem\n"
      "  group: S3\n"
      "  seq_len: 32\n"
      "  eval_lengths: []\n"
      "model:\n"
      "  d_model: 64\n"
      "  n_layers: 2\n"
      "  vocab_size: 0\n"
      "  mixer:\n"
      "    type: attention\n"
      "    heads: 4\n"
      "    rope_base: 1.0e+04\n"
      "  hybrid_mixer:\n"
      "    type: none\n"
      "  hybrid_layers: []\n"
      "  mlp:\n"
      "    type: swiglu\n"
      "    intermediate_size: 0\n"
      "    hidden_ratio: 4.0e+00\n"
      "  tie_embeddings: false\n"
      "  norm_eps: 1.0e-06\n"
      "  init_std: 2.0e-02\n"
      "  init: normal\n"
      "optimizer:\n"
      "  type: adamw\n"
      "  lr: 1.0e-03\n"
      "  weight_decay: 0.0e+00\n"
      "  beta1: 9.0e-01\n"
      "  beta2: 9.99e-01\n"
      "  eps: 1.0e-08\n"
      "  eps_mode: torch\n"
      "  decay_embeddings: false\n"
      "schedule:\n"
      "  type: constant\n"
      "  warmup: 0.0e+00\n"
      "train:\n"
      "  steps: 1000\n"
      "  batch_size: 32\n"
      "  ranks: 1\n"
      "  deterministic: false\n"
      "  eval_every: 100\n"
      "  eval_batches: 4\n"
      "  checkpoint_every: 0\n"
      "  grad_clip: 0.0e+00\n"
      "  log_every: 10\n"
      "  record_grad_trace: \"\"\n"
      "  diagnostics_every: 0\n"
      "  precision: fp32\n"
      "out: runs/trial\n";
  CHECK(to_canonical_yaml(TrialConfig{}) == expected);
  CHECK(to_canonical_yaml(parse_trial_config("", "empty.yaml")) == expected);
}

TEST_CASE("keys that do not apply to the chosen type are not emitted", "[config][canonical]") {
  TrialConfig cfg;
  cfg.schedule.type = "wsd";
  std::string yaml = to_canonical_yaml(cfg);
  CHECK_THAT(yaml, Catch::Matchers::Contains("  min_lr_ratio: 0.0e+00\n  decay: 2.0e-01\n"));
  cfg.schedule.type = "cosine";
  yaml = to_canonical_yaml(cfg);
  CHECK_THAT(yaml, Catch::Matchers::Contains("  min_lr_ratio: 0.0e+00\n"));
  CHECK_THAT(yaml, !Catch::Matchers::Contains("decay: 2.0e-01"));
  cfg.model.mlp.type = "none";
  yaml = to_canonical_yaml(cfg);
  CHECK_THAT(yaml, Catch::Matchers::Contains("  mlp:\n    type: none\n  tie_embeddings"));
}

TEST_CASE("format_double: dot, signed exponent, shortest mantissa that round-trips", "[config][canonical]") {
  CHECK(format_double(1e-3) == "1.0e-03");
  CHECK(format_double(2.5) == "2.5e+00");
  CHECK(format_double(0.0) == "0.0e+00");
  CHECK(format_double(-0.0) == "-0.0e+00");
  CHECK(format_double(0.1) == "1.0e-01");
  CHECK(format_double(3e-4) == "3.0e-04");
  CHECK(format_double(1e-25) == "1.0e-25");
  CHECK(format_double(1.0 / 3.0) == "3.333333333333333e-01");
  CHECK(format_double(10000.0) == "1.0e+04");
  CHECK(format_double(1e-300) == "1.0e-300");
  CHECK(format_double(std::numeric_limits<double>::infinity()) == ".inf");

  // The pattern checker itself rejects the spellings PyYAML would not read as floats.
  CHECK(is_canonical_float("1.0e-03"));
  CHECK(is_canonical_float("-2.5e+10"));
  for (const char* bad : {"1e-03", "1.0e-3", "1.0e3", "1.e-03", ".5e-03", "1.0E-03", "1.0e-003", "1.0e-03 ", "0.001"})
    CHECK_FALSE(is_canonical_float(bad));

  // Random doubles over the whole exponent range, by their bits: each text matches the pattern,
  // reads back (strtod, an independent parser) to the same bits, and uses no more digits than
  // the shortest correctly rounded printf %e that round-trips.
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    double x = std::bit_cast<double>(rng());
    if (!std::isfinite(x)) continue;
    const std::string s = format_double(x);
    INFO(s);
    REQUIRE(is_canonical_float(s, 3));
    REQUIRE(same_bits(std::strtod(s.c_str(), nullptr), x));
    REQUIRE(mantissa_digits(s) <= printf_shortest_digits(x));
  }
}

TEST_CASE("round trip: parse(emit(cfg)) equals cfg field for field, awkward doubles included", "[config][canonical]") {
  TrialConfig cfg;
  cfg.seed = (std::uint64_t{1} << 63) - 1;
  cfg.task.group = "Z997";
  cfg.task.seq_len = 7;
  cfg.task.eval_lengths = {7, 64, 1000};
  cfg.model.d_model = 96;
  cfg.model.n_layers = 5;
  cfg.model.vocab_size = 131;
  cfg.model.mixer.heads = 6;
  cfg.model.mixer.rope_base = std::numeric_limits<double>::max();
  cfg.model.mlp.intermediate_size = 300;
  cfg.model.mlp.hidden_ratio = 1.0 / 3.0;
  cfg.model.tie_embeddings = true;
  cfg.model.norm_eps = std::numeric_limits<double>::denorm_min();
  cfg.model.init_std = 0.1;
  cfg.model.init = "rescale";
  cfg.optimizer.lr = 3e-4;
  cfg.optimizer.weight_decay = 0.1 + 0.2;  // 0.30000000000000004
  cfg.optimizer.beta1 = std::nextafter(1.0, 0.0);
  cfg.optimizer.beta2 = 0.95;
  cfg.optimizer.eps = 1e-25;
  cfg.optimizer.eps_mode = expt::config::EpsMode::hf;
  cfg.optimizer.decay_embeddings = true;
  cfg.schedule.type = "wsd";
  cfg.schedule.warmup = 0.1;
  cfg.schedule.min_lr_ratio = 2.0 / 3.0;
  cfg.schedule.decay = 0.2;
  cfg.train.steps = 5'000'000'000;
  cfg.train.batch_size = 96;
  cfg.train.ranks = 3;
  cfg.train.eval_every = 250;
  cfg.train.eval_batches = 2;
  cfg.train.checkpoint_every = 1000;
  cfg.train.grad_clip = 1e-320;  // subnormal
  cfg.train.log_every = 1;
  cfg.out = "runs/some dir/with: colon";
  check_same_config(round_trip(cfg), cfg);
  CHECK(to_canonical_yaml(round_trip(cfg)) == to_canonical_yaml(cfg));

  for (const char* type : {"constant", "cosine", "linear"}) {
    TrialConfig c = cfg;
    c.schedule.type = type;
    c.schedule.decay = TrialConfig{}.schedule.decay;  // not emitted for these types
    if (c.schedule.type == "constant") c.schedule.min_lr_ratio = 0.0;
    INFO(type);
    check_same_config(round_trip(c), c);
  }
}

TEST_CASE("strings are plain only when that reads back as the same string", "[config][canonical]") {
  CHECK(format_string("runs/trial") == "runs/trial");
  CHECK(format_string("Z5") == "Z5");
  CHECK(format_string("word_problem") == "word_problem");
  CHECK(format_string("yes") == "\"yes\"");
  CHECK(format_string("Off") == "\"Off\"");
  CHECK(format_string("123") == "\"123\"");
  CHECK(format_string("") == "\"\"");
  for (const std::string s :
       {"yes",         "no",   "on",    "off",         "y",         "N",           "true",     "False", "null",
        "~",           "123",  "1.5",   "1e3",         ".inf",      ".nan",        "-",        "- a",   "a: b",
        "#c",          "a #b", "[x]",   "{x}",         "*a",        "&a",          "!t",       "%",     "@",
        "`",           "'q'",  "\"q\"", "back\\slash", "tab\there", "line\nbreak", "bell\x07", " lead", "trail ",
        "über/straße", "0x1F", "1_000", "2001-12-14",  "1:20",      "=",           "<<"}) {
    INFO("string: [" << s << "] emitted as " << format_string(s));
    TrialConfig cfg;
    cfg.out = s.empty() ? "x" : s;
    CHECK(round_trip(cfg).out == cfg.out);
  }
}

TEST_CASE("every float key is emitted as d.ddde±XX", "[config][canonical]") {
  const auto floats = float_keys();
  REQUIRE(floats.size() >= 12);
  for (const TrialConfig& cfg : {TrialConfig{}, parse_trial_config("schedule: {type: wsd, warmup: 100}\n"
                                                                   "optimizer: {lr: 3e-4, eps: 1e-25, beta2: 0.95}\n"
                                                                   "train: {grad_clip: 1}\n",
                                                                   "c.yaml")}) {
    std::map<std::string, std::string> flat;
    for (const auto& [k, v] : flatten_config(cfg)) flat[k] = v;
    for (const std::string& key : floats) {
      if (!flat.count(key)) continue;  // a key that does not apply to this config's types
      INFO(key << ": " << flat[key]);
      CHECK(is_canonical_float(flat[key]));
    }
  }
}

TEST_CASE("PyYAML (YAML 1.1) reads every float of the canonical YAML as a float", "[config][canonical]") {
  const std::string python = EXPT_PYTHON;
  if (std::system((python + " -c 'import yaml' 2>/dev/null").c_str()) != 0) {
    WARN("python3 with PyYAML not available at " << python << "; check skipped");
    return;
  }
  TrialConfig cfg = parse_trial_config("schedule: {type: cosine, warmup: 0.25}\noptimizer: {eps: 1e-25}\n", "c.yaml");
  cfg.model.mixer.rope_base = 1e300;
  const auto dir = std::filesystem::temp_directory_path() / ("expt_config_test_pyyaml_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto yaml_path = dir / "trial.yaml";
  const auto out_path = dir / "types.txt";
  std::ofstream(yaml_path) << to_canonical_yaml(cfg);
  // Prints "dotted.key type repr" for every leaf.
  const std::string script =
      "import sys, yaml\n"
      "def walk(d, p):\n"
      "    for k, v in d.items():\n"
      "        q = p + '.' + k if p else k\n"
      "        if isinstance(v, dict): walk(v, q)\n"
      "        else: print(q, type(v).__name__, repr(v))\n"
      "walk(yaml.safe_load(open(sys.argv[1])), '')\n";
  const auto script_path = dir / "print_leaf_types.py";  // not types.py: that would shadow the stdlib module
  std::ofstream(script_path) << script;
  const std::string cmd = python + " " + script_path.string() + " " + yaml_path.string() + " > " + out_path.string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::map<std::string, std::pair<std::string, std::string>> seen;
  std::ifstream in(out_path);
  for (std::string key, type, value; in >> key >> type && std::getline(in >> std::ws, value);)
    seen[key] = {type, value};
  std::filesystem::remove_all(dir);

  std::map<std::string, std::string> flat;
  for (const auto& [k, v] : flatten_config(cfg)) flat[k] = v;
  int n_floats = 0;
  for (const std::string& key : float_keys()) {
    if (!flat.count(key)) continue;
    INFO(key);
    REQUIRE(seen.count(key));
    CHECK(seen[key].first == "float");
    // Python's repr of the float reads back to the same double as our text.
    CHECK(same_bits(std::strtod(seen[key].second.c_str(), nullptr), std::strtod(flat[key].c_str(), nullptr)));
    ++n_floats;
  }
  CHECK(n_floats >= 12);
  CHECK(seen["seed"].first == "int");
  CHECK(seen["model.tie_embeddings"].first == "bool");
  CHECK(seen["task.group"].first == "str");
  CHECK(seen["task.eval_lengths"].first == "list");
}
