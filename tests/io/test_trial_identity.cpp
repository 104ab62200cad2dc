// Which trial a directory holds (core/io/trial_identity.hpp, decision 79): trial.yaml's header
// line, legacy directories recognised from their trial.yaml text (the committed fixtures of
// tests/fixtures/legacy were written by the binary before the change), and their adoption by a sweep.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/config/loader.hpp"
#include "core/io/trial_identity.hpp"

namespace fs = std::filesystem;
using namespace expt;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(EXPT_BINARY_DIR) / "test-work" / "trial_identity" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// FNV-1a 64 written out again from its definition, independent of the library's.
std::string fnv1a_hex(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

const fs::path kFixtures = fs::path(EXPT_SOURCE_DIR) / "tests" / "fixtures" / "legacy";

config::TrialConfig tiny(const std::string& out) {
  return config::parse_trial_config("seed: 3\noptimizer: {type: muon, lr: 0.01}\ntrain: {steps: 20}\n", "t.yaml",
                                    {"out=" + out});
}

}  // namespace

TEST_CASE("the legacy id is FNV-1a of the canonical YAML without the out line", "[trial_identity]") {
  const config::TrialConfig cfg = tiny("runs/a");
  std::string text = config::to_canonical_yaml(cfg);
  const std::string out_line = "out: runs/a\n";
  REQUIRE(text.substr(text.size() - out_line.size()) == out_line);
  const std::string id = io::legacy_trial_id(text);
  text.resize(text.size() - out_line.size());
  CHECK(id == fnv1a_hex(text));
  CHECK(id != config::config_hash(cfg));
}

TEST_CASE("the previous binary's directories carry their legacy id", "[trial_identity]") {
  // The sweep fixture's trial folders are named by the previous binary's ids: recomputing them from
  // trial.yaml must give those names back, and the current id from the same config.
  int n = 0;
  for (const auto& e : fs::directory_iterator(kFixtures / "sweep" / "trials")) {
    const auto d = io::read_directory_trial(e.path());
    REQUIRE(d);
    INFO(e.path());
    CHECK(d->legacy_id == e.path().filename().string());
    CHECK(d->id == config::config_hash(config::load_trial_config((e.path() / "trial.yaml").string())));
    CHECK(d->id != d->legacy_id);
    ++n;
  }
  CHECK(n == 3);
  const auto finished = io::read_directory_trial(kFixtures / "trial_finished");
  REQUIRE(finished);
  CHECK_FALSE(finished->legacy_id.empty());
}

TEST_CASE("a new trial.yaml records the id and the config schema and reads as the config", "[trial_identity]") {
  const fs::path dir = fresh_dir("new");
  const config::TrialConfig cfg = tiny((dir / "t").string());
  const std::string text = io::trial_yaml_text(cfg);
  CHECK(text.rfind("# trial " + config::config_hash(cfg) + ", config schema " +
                       std::to_string(config::kConfigSchemaVersion) + "\n",
                   0) == 0);
  std::ofstream(dir / "trial.yaml") << text;
  const auto d = io::read_directory_trial(dir);
  REQUIRE(d);
  CHECK(d->id == config::config_hash(cfg));
  CHECK(d->legacy_id.empty());
  CHECK(config::to_canonical_yaml(config::load_trial_config((dir / "trial.yaml").string())) ==
        config::to_canonical_yaml(cfg));
  // Written under another config schema: no trial of this binary.
  std::ofstream(dir / "trial.yaml") << "# trial " << config::config_hash(cfg) << ", config schema "
                                    << config::kConfigSchemaVersion + 1 << "\n"
                                    << config::to_canonical_yaml(cfg);
  CHECK(io::read_directory_trial(dir)->id.empty());
  CHECK_FALSE(io::read_directory_trial(dir / "missing"));
}

TEST_CASE("a sweep adopts the legacy directories named by their legacy id, and only those", "[trial_identity]") {
  const fs::path trials = fresh_dir("adopt") / "trials";
  const auto legacy = [&](const config::TrialConfig& cfg, const std::string& name) {
    fs::create_directories(trials / name);
    std::ofstream(trials / name / "trial.yaml") << config::to_canonical_yaml(cfg);
    std::ofstream(trials / name / "marker") << name;
  };
  const config::TrialConfig a = tiny("x"), b = config::parse_trial_config("seed: 4\n", "b.yaml");
  const config::TrialConfig c = config::parse_trial_config("seed: 5\n", "c.yaml");
  const std::string a_old = io::legacy_trial_id(config::to_canonical_yaml(a));
  const std::string b_old = io::legacy_trial_id(config::to_canonical_yaml(b));
  legacy(a, a_old);
  legacy(b, b_old);
  legacy(c, "not-its-id");                                  // not named by its id: not a sweep's directory, left alone
  fs::create_directories(trials / config::config_hash(b));  // b's new name is taken: left alone
  fs::create_directories(trials / config::config_hash(c));
  std::ofstream(trials / config::config_hash(c) / "trial.yaml") << io::trial_yaml_text(c);

  const auto lines = io::adopt_legacy_trial_directories(trials);
  CHECK(read(trials / config::config_hash(a) / "marker") == a_old);
  CHECK_FALSE(fs::exists(trials / a_old));
  CHECK(fs::exists(trials / b_old / "marker"));
  CHECK(fs::exists(trials / "not-its-id" / "marker"));
  // One line for the rename of a, one for b left alone.
  REQUIRE(lines.size() == 2);
  const bool a_first = lines[0].find(config::config_hash(a)) != std::string::npos;
  CHECK(lines[a_first ? 0 : 1].find("-> trials/" + config::config_hash(a)) != std::string::npos);
  CHECK(lines[a_first ? 1 : 0].find("left alone") != std::string::npos);
  CHECK(io::adopt_legacy_trial_directories(trials).size() == 1);  // a is done; b still reported
}
