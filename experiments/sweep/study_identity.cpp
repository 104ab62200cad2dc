#include "experiments/sweep/study_identity.hpp"

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

#include "core/config/canonical.hpp"
#include "core/io/atomic_file.hpp"
#include "experiments/sweep/scheduler.hpp"

namespace fs = std::filesystem;

namespace expt::experiments {

namespace {

struct RecordedStudy {
  std::string name;
  std::string identity;
  std::string index;  // relative to the sweep directory
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<RecordedStudy> read_record(const fs::path& file) {
  std::vector<RecordedStudy> studies;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_text(file));
    for (const auto& s : j.at("studies"))
      studies.push_back(
          {s.at("name").get<std::string>(), s.at("identity").get<std::string>(), s.at("index").get<std::string>()});
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        fmt::format("{} is damaged ({}); it records which study this directory holds. "
                    "Restore it or use --out elsewhere",
                    file.string(), e.what()));
  }
  return studies;
}

void write_record(const fs::path& file, const std::vector<RecordedStudy>& studies) {
  nlohmann::json list = nlohmann::json::array();
  for (const RecordedStudy& s : studies)
    list.push_back({{"name", s.name}, {"identity", s.identity}, {"index", s.index}});
  io::write_file_atomic(file, nlohmann::json{{"studies", list}}.dump(2) + "\n");
}

// The study of a directory written before study.json existed, named by sweep.resolved.yaml's first
// line. Its identity cannot be recomputed: an older `expt` resolved studies differently (other
// defaults, other trial ids), so such a directory is adopted by the study of the same name.
std::optional<RecordedStudy> legacy_study(const fs::path& dir) {
  const fs::path resolved = dir / "sweep.resolved.yaml";
  if (!fs::exists(resolved)) return std::nullopt;
  const std::string text = read_text(resolved);
  RecordedStudy s;
  s.index = ".";
  s.identity = "not recorded";
  if (text.rfind("study: ", 0) == 0) s.name = text.substr(7, text.find('\n') - 7);
  return s;
}

std::string names_of(const std::vector<RecordedStudy>& studies) {
  std::string out;
  for (const RecordedStudy& s : studies)
    out += fmt::format("{}'{}' (identity {})", out.empty() ? "" : ", ", s.name, s.identity);
  return out;
}

}  // namespace

std::string study_identity(const Planner& planner) { return config::fnv1a64_hex(study_identity_yaml(planner)); }

fs::path claim_sweep_directory(const Study& study, const Planner& planner, const fs::path& dir, bool add_to_existing) {
  const fs::path record = dir / "study.json";
  const RecordedStudy mine{study.name, study_identity(planner), "."};
  std::vector<RecordedStudy> studies;
  if (fs::exists(record)) {
    studies = read_record(record);
  } else if (auto legacy = legacy_study(dir)) {
    if (legacy->name == study.name) {
      write_record(record, {mine});
      return dir;
    }
    studies.push_back(*legacy);
  }
  if (studies.empty()) {
    write_record(record, {mine});
    return dir;
  }
  for (const RecordedStudy& s : studies)
    if (s.identity == mine.identity) return s.index == "." ? dir : dir / s.index;
  if (!add_to_existing)
    throw StudyMismatch(fmt::format(
        "{} holds the sweep of study {}, not of study '{}' (identity {}, {}): another study, or the same file "
        "with overrides that change its search, scales or base. Nothing was run. Use --out elsewhere, or "
        "--add-to-existing to add "
        "this study's trials to it",
        dir.string(), names_of(studies), mine.name, mine.identity, study.file));
  // Added: its own index folder; the name alone unless another study of that name took it.
  RecordedStudy added = mine;
  added.index = "studies/" + study.name;
  for (const RecordedStudy& s : studies)
    if (s.index == added.index) added.index += "-" + mine.identity;
  fs::create_directories(dir / "trials");
  fs::create_directories(dir / added.index);
  const fs::path link = dir / added.index / "trials";
  if (!fs::is_symlink(link)) fs::create_directory_symlink("../../trials", link);
  studies.push_back(added);
  write_record(record, studies);
  return dir / added.index;
}

}  // namespace expt::experiments
