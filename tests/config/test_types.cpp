// The mixer and optimizer type descriptors (core/config/type_descriptors.hpp) are the one place a
// type is declared: these tests hold what the schema derives from them (the keys that apply, the
// per-type defaults, the documentation, `expt types`, the head split) to the descriptors.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <variant>

#include "config_test_util.hpp"
#include "core/config/loader.hpp"
#include "core/config/trial_schema.hpp"
#include "core/config/type_descriptors.hpp"

using namespace expt::config;

namespace {

// The keys flatten_config writes under `prefix` (e.g. "optimizer."), without the prefix.
std::set<std::string> written_keys(const TrialConfig& cfg, const std::string& prefix) {
  std::set<std::string> keys;
  for (const auto& [key, value] : flatten_config(cfg))
    if (key.rfind(prefix, 0) == 0) keys.insert(key.substr(prefix.size()));
  return keys;
}

const schema::DocRow& row_of(const std::vector<schema::DocRow>& rows, const std::string& path) {
  for (const auto& row : rows)
    if (row.path == path) return row;
  FAIL("no documentation row " << path);
  return rows.front();
}

}  // namespace

TEST_CASE("a type's keys are exactly the keys written for it", "[config][types]") {
  for (const OptimizerType& t : optimizer_types()) {
    INFO(t.name);
    TrialConfig cfg;
    cfg.optimizer = optimizer_defaults(t.name);
    std::set<std::string> expected(t.keys.begin(), t.keys.end());
    expected.insert(common_optimizer_keys().begin(), common_optimizer_keys().end());
    CHECK(written_keys(cfg, "optimizer.") == expected);
  }
  for (const MixerType& t : mixer_types()) {
    INFO(t.name);
    TrialConfig cfg;
    cfg.model.mixer = mixer_defaults(t.name);
    std::set<std::string> expected(t.keys.begin(), t.keys.end());
    expected.insert("type");
    CHECK(written_keys(cfg, "model.mixer.") == expected);
  }
}

TEST_CASE("naming a type in YAML gives its descriptor's defaults, which expt types lists", "[config][types]") {
  const auto listed = optimizer_type_keys();
  REQUIRE(listed.size() == optimizer_types().size());
  for (std::size_t i = 0; i < optimizer_types().size(); ++i) {
    const std::string& name = optimizer_types()[i].name;
    INFO(name);
    const TrialConfig read = parse_trial_config("optimizer: {type: " + name + "}\n", "t.yaml");
    TrialConfig expected;
    expected.optimizer = optimizer_defaults(name);
    CHECK(to_canonical_yaml(read) == to_canonical_yaml(expected));
    CHECK(listed[i].name == name);
    for (const auto& [key, value] : listed[i].keys) {
      INFO(key);
      bool found = false;
      for (const auto& [flat_key, flat_value] : flatten_config(read))
        if (flat_key == "optimizer." + key) found = flat_value == value;
      CHECK(found);
    }
  }
  const TrialConfig gla = parse_trial_config("model: {mixer: {type: gla}}\n", "t.yaml");
  CHECK(gla.model.mixer.expand_k == 0.5);
  CHECK_FALSE(gla.model.mixer.use_short_conv);
  CHECK(gla.model.mixer.use_output_gate);
  CHECK(parse_trial_config("optimizer: {type: muon}\n", "t.yaml").optimizer.lr == 0.02);
  CHECK(parse_trial_config("optimizer: {type: mfac}\n", "t.yaml").optimizer.momentum == 0.0);
}

TEST_CASE("the key table shows each type's own defaults and where each key applies", "[config][types]") {
  std::vector<schema::DocRow> rows;
  trial_table().describe("", rows);
  using Defaults = std::vector<std::pair<std::string, std::string>>;
  CHECK(row_of(rows, "optimizer.lr").type_defaults == Defaults{{"muon", "2.0e-02"}, {"soap", "3.0e-03"}});
  CHECK(row_of(rows, "optimizer.beta2").type_defaults == Defaults{{"muon", "9.5e-01"}, {"soap", "9.5e-01"}});
  CHECK(row_of(rows, "optimizer.momentum").type_defaults == Defaults{{"mfac", "0.0e+00"}});
  CHECK(row_of(rows, "optimizer.momentum").applies_to == "optimizer.type: muon, mfac");
  CHECK(row_of(rows, "optimizer.lr").applies_to == "any");
  CHECK(row_of(rows, "model.mixer.expand_k").type_defaults == Defaults{{"gla", "5.0e-01"}});
  CHECK(row_of(rows, "model.mixer.use_output_gate").type_defaults ==
        Defaults{{"gla", "true"}, {"deltaproduct", "true"}, {"gated_deltaproduct", "true"}});
  CHECK(row_of(rows, "optimizer.type").domain == "adamw, muon, soap, mfac, dct_adamw");
  CHECK(schema_markdown().find("| `optimizer.lr` | float | `1.0e-03` (muon `2.0e-02`, soap `3.0e-03`) |") !=
        std::string::npos);
}

TEST_CASE("the mixer descriptors split d_model into heads or say why not", "[config][types]") {
  const auto split = [](const std::string& type, int d_model, int heads) {
    ModelConfig m;
    m.d_model = d_model;
    m.mixer = mixer_defaults(type);
    m.mixer.heads = heads;
    return find_mixer_type(type)->sizing(m);
  };
  const auto dims = [](const MixerSizing& s) {
    REQUIRE(std::holds_alternative<HeadDims>(s));
    const HeadDims d = std::get<HeadDims>(s);
    return std::vector<int>{d.heads, d.key_dim, d.value_dim};
  };
  CHECK(dims(split("attention", 64, 4)) == std::vector<int>{4, 16, 16});
  CHECK(dims(split("gla", 64, 4)) == std::vector<int>{4, 8, 16});  // expand_k 0.5
  CHECK(dims(split("deltanet", 64, 4)) == std::vector<int>{4, 16, 16});
  CHECK(dims(split("deltaproduct", 64, 4)) == std::vector<int>{4, 16, 16});
  CHECK(std::holds_alternative<SizingConflict>(split("attention", 64, 3)));
  CHECK(std::holds_alternative<SizingConflict>(split("attention", 20, 4)));  // head dim 5: RoPE needs it even
  CHECK(std::holds_alternative<SizingConflict>(split("gla", 64, 0)));
  CHECK(std::get<SizingConflict>(split("gla", 64, 3)).keys.front() == "model.mixer.expand_k");
  CHECK(find_mixer_type("none")->sizing == nullptr);
  CHECK(find_mixer_type("mamba") == nullptr);
}

TEST_CASE("enumerated options are read once into enums and written back by name", "[config][types]") {
  const TrialConfig cfg = parse_trial_config(
      "optimizer:\n  type: muon\n  ns_method: standard\n  scale: moonlight\n  ns_coefficients: classic_quintic\n"
      "  adam_patterns: \"*.o_proj.weight,*.q_proj.*\"\n",
      "t.yaml");
  CHECK(cfg.optimizer.ns_method == NsMethod::standard);
  CHECK(cfg.optimizer.scale == MuonScale::moonlight);
  CHECK(cfg.optimizer.ns_coefficients == NsCoefficients::classic_quintic);
  CHECK(cfg.optimizer.adam_patterns == std::vector<std::string>{"*.o_proj.weight", "*.q_proj.*"});
  const std::string canonical = to_canonical_yaml(cfg);
  CHECK(canonical.find("  adam_patterns: \"*.o_proj.weight,*.q_proj.*\"\n") != std::string::npos);
  CHECK(canonical.find("  ns_method: standard\n") != std::string::npos);
  CHECK(to_canonical_yaml(parse_trial_config(canonical, "c.yaml")) == canonical);
  CHECK(parse_trial_config("optimizer: {type: mfac, wd_mode: decoupled_lr_scaled}\n", "t.yaml").optimizer.wd_mode ==
        WdMode::decoupled_lr_scaled);
  CHECK(parse_trial_config("optimizer: {type: dct_adamw, on_refresh: remap}\n", "t.yaml").optimizer.on_refresh ==
        OnRefresh::remap);
  CHECK(parse_trial_config("optimizer: {eps_mode: hf}\n", "t.yaml").optimizer.eps_mode == EpsMode::hf);
  CHECK(parse_trial_config("optimizer: {type: muon, adam_patterns: \"\"}\n", "t.yaml").optimizer.adam_patterns.empty());
}
