// TrialDirectory: the one owner of a trial's directory (lock, attempts.jsonl, quarantine, identity,
// result). Each test builds the files it needs in a fresh temporary directory.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/config/loader.hpp"
#include "core/io/trial_directory.hpp"
#include "core/io/trial_identity.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
using expt::io::DirectoryLock;
using expt::io::TrialDirectory;
using expt::io::test::read_whole_file;
using expt::io::test::TempDir;
using expt::io::test::write_whole_file;

namespace {

expt::config::TrialConfig small_config(double lr) {
  return expt::config::parse_trial_config(
      "seed: 1\n"
      "task: {type: word_problem, group: Z5, seq_len: 8}\n"
      "model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}}\n"
      "optimizer: {type: adamw, lr: " +
          std::to_string(lr) + "}\ntrain: {steps: 4, batch_size: 2}\n",
      "small.yaml");
}

}  // namespace

TEST_CASE("TrialDirectory counts the start events of attempts.jsonl", "[trial_directory]") {
  TempDir tmp;
  const TrialDirectory dir(tmp.path());
  REQUIRE(dir.count_attempts() == 0);
  dir.append_attempt_event(1, "start", 0, 2);
  dir.append_attempt_event(1, "fail", 3, 2, {{"message", "boom"}});
  dir.append_attempt_event(2, "start", 0, 2);
  REQUIRE(dir.count_attempts() == 2);

  // Each line is one JSON object with the fixed fields and the extra ones.
  std::ifstream in(tmp / "attempts.jsonl");
  std::string line;
  std::getline(in, line);
  std::getline(in, line);
  const auto j = nlohmann::json::parse(line);
  REQUIRE(j.at("attempt") == 1);
  REQUIRE(j.at("event") == "fail");
  REQUIRE(j.at("step") == 3);
  REQUIRE(j.at("ranks") == 2);
  REQUIRE(j.at("message") == "boom");
  REQUIRE(j.at("time_utc").get<std::string>().size() == 20);
  REQUIRE(j.contains("host_pid"));
}

TEST_CASE("TrialDirectory writes trial.yaml once and refuses another trial's config", "[trial_directory]") {
  TempDir tmp;
  const TrialDirectory dir(tmp.path());
  const auto cfg = small_config(1e-3);
  dir.claim(cfg, false);  // a rank that does not write leaves nothing behind
  REQUIRE_FALSE(fs::exists(tmp / "trial.yaml"));
  dir.claim(cfg, true);
  // The header line naming the trial (decision 79), then the resolved config.
  const std::string written = read_whole_file(tmp / "trial.yaml");
  REQUIRE(written == expt::io::trial_yaml_text(cfg));
  const std::string canonical = expt::config::to_canonical_yaml(cfg);
  REQUIRE(written.substr(written.size() - canonical.size()) == canonical);
  REQUIRE(dir.claim(cfg, true).empty());  // the same trial again: accepted (not a legacy directory)

  const auto other = small_config(2e-3);
  try {
    dir.claim(other, true);
    FAIL("another config was accepted");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    INFO(what);
    REQUIRE(what.find(expt::config::config_hash(cfg)) != std::string::npos);
    REQUIRE(what.find(expt::config::config_hash(other)) != std::string::npos);
  }
}

TEST_CASE("TrialDirectory quarantines an unreadable result and reads none", "[trial_directory]") {
  TempDir tmp;
  const TrialDirectory dir(tmp.path());
  REQUIRE_FALSE(dir.read_result());
  dir.create();
  REQUIRE(fs::is_directory(tmp / "metrics"));
  REQUIRE(fs::is_directory(tmp / "checkpoints"));
  write_whole_file(tmp / "result.h5", "not an HDF5 file");
  REQUIRE_FALSE(dir.read_result());  // unreadable: not trusted
  REQUIRE(dir.quarantined_files().empty());

  const auto moved = dir.quarantine_damaged();
  REQUIRE(moved.size() == 1);
  REQUIRE(moved[0].find("unreadable result") != std::string::npos);
  REQUIRE_FALSE(fs::exists(tmp / "result.h5"));
  const auto names = dir.quarantined_files();
  REQUIRE(names.size() == 1);
  REQUIRE(names[0].rfind("result.h5-", 0) == 0);
  REQUIRE(read_whole_file(tmp / "quarantine" / names[0]) == "not an HDF5 file");
  REQUIRE(dir.quarantine_damaged().empty());  // nothing left to move
}

TEST_CASE("TrialDirectory quarantines a checkpoint folder without COMMIT", "[trial_directory]") {
  TempDir tmp;
  const TrialDirectory dir(tmp.path());
  dir.create();
  fs::create_directories(tmp / "checkpoints" / "step-4");
  write_whole_file(tmp / "checkpoints" / "step-4" / "state.h5", "half written");
  REQUIRE_FALSE(dir.latest_checkpoint());
  const auto moved = dir.quarantine_incomplete_checkpoints();
  REQUIRE(moved.size() == 1);
  REQUIRE_FALSE(fs::exists(tmp / "checkpoints" / "step-4"));
  REQUIRE(dir.quarantined_files().size() == 1);
}

TEST_CASE("TrialDirectory's lock refuses a second holder until the first is released", "[trial_directory]") {
  TempDir tmp;
  const TrialDirectory dir(tmp.path());
  {
    const DirectoryLock first = dir.lock();
    try {
      const DirectoryLock second = dir.lock();
      FAIL("the lock was taken twice");
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      INFO(what);
      REQUIRE(what.find("is in use by another expt process") != std::string::npos);
      REQUIRE(what.find((tmp / ".lock").string()) != std::string::npos);
    }
  }
  const DirectoryLock again = dir.lock();  // released with the first holder
  REQUIRE(fs::exists(tmp / ".lock"));
}

TEST_CASE("TrialDirectory names segments by attempt and first step", "[trial_directory]") {
  const TrialDirectory dir("/runs/t");
  REQUIRE(dir.segment_path(3, 120) == fs::path("/runs/t/metrics/seg-3-120.h5"));
  REQUIRE(dir.result_path() == fs::path("/runs/t/result.h5"));
}
