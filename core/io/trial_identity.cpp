#include "core/io/trial_identity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"

namespace expt::io {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeaderStart = "# trial ";
constexpr std::string_view kHeaderSchema = ", config schema ";

struct Header {
  std::string id;
  std::int64_t schema = 0;
};

// `# trial <16 hex digits>, config schema <n>` on the first line, else nullopt (a legacy file).
std::optional<Header> parse_header(std::string_view text) {
  const std::string_view line = text.substr(0, text.find('\n'));
  if (line.substr(0, kHeaderStart.size()) != kHeaderStart) return std::nullopt;
  const std::string_view rest = line.substr(kHeaderStart.size());
  const std::size_t comma = rest.find(kHeaderSchema);
  if (comma != 16 || rest.substr(0, 16).find_first_not_of("0123456789abcdef") != std::string_view::npos)
    return std::nullopt;
  Header h;
  h.id = std::string(rest.substr(0, 16));
  const std::string_view number = rest.substr(comma + kHeaderSchema.size());
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), h.schema);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  return h;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string trial_yaml_text(const config::TrialConfig& cfg) {
  return fmt::format("{}{}{}{}\n{}", kHeaderStart, config::config_hash(cfg), kHeaderSchema,
                     config::kConfigSchemaVersion, config::to_canonical_yaml(cfg));
}

std::string legacy_trial_id(std::string_view trial_yaml) {
  std::string text;
  std::size_t start = 0;
  while (start < trial_yaml.size()) {
    std::size_t end = trial_yaml.find('\n', start);
    end = end == std::string_view::npos ? trial_yaml.size() : end + 1;
    const std::string_view line = trial_yaml.substr(start, end - start);
    if (line.substr(0, 5) != "out: ") text += line;
    start = end;
  }
  return config::fnv1a64_hex(text);
}

std::optional<DirectoryTrial> read_directory_trial(const fs::path& trial_dir) {
  const fs::path path = trial_dir / "trial.yaml";
  if (!fs::exists(path)) return std::nullopt;
  const std::string text = read_text(path);
  DirectoryTrial d;
  if (const auto header = parse_header(text)) {
    if (header->schema == config::kConfigSchemaVersion) d.id = header->id;
    return d;
  }
  d.legacy_id = legacy_trial_id(text);
  if (config::kConfigSchemaVersion == kLegacyConfigSchema)
    d.id = config::config_hash(config::parse_trial_config(text, path.string()));
  return d;
}

std::vector<std::string> adopt_legacy_trial_directories(const fs::path& trials_dir) {
  std::vector<std::string> lines;
  if (!fs::is_directory(trials_dir)) return lines;
  std::vector<fs::path> dirs;  // listed first: renaming while iterating may list an entry twice
  for (const fs::directory_entry& e : fs::directory_iterator(trials_dir))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    std::optional<DirectoryTrial> d;
    try {
      d = read_directory_trial(dir);
    } catch (const std::exception& ex) {
      lines.push_back(fmt::format("trials/{}: trial.yaml unreadable, left alone ({})", name, ex.what()));
      continue;
    }
    // Only a directory named by its own legacy id is one an older sweep made.
    if (!d || d->legacy_id != name || d->id.empty() || d->id == name) continue;
    const fs::path target = trials_dir / d->id;
    if (fs::exists(target)) {
      lines.push_back(
          fmt::format("trials/{}: legacy directory of trial {}, left alone: trials/{} exists", name, d->id, d->id));
      continue;
    }
    fs::rename(dir, target);
    lines.push_back(fmt::format("trials/{} -> trials/{} (legacy id; decision 79)", name, d->id));
  }
  return lines;
}

}  // namespace expt::io
