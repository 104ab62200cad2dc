#include "core/io/checkpoint.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <fstream>
#include <stdexcept>
#include <type_traits>
#include <variant>

#include "core/io/atomic_file.hpp"
#include "core/io/hdf5.hpp"
#include "core/io/metrics.hpp"

namespace expt::io {

namespace fs = std::filesystem;

namespace {

const char* const kStateFile = "state.h5";
const char* const kCommitFile = "COMMIT";
// Marks an entry stored without a shape (StateDict shape {}): it is written as a 1-D dataset of
// its elements and read back with an empty shape.
const char* const kUnshapedAttr = "unshaped";

std::string step_dir_name(std::int64_t step) { return "step-" + std::to_string(step); }

// "step-<n>", n decimal without sign or leading zeros.
std::optional<std::int64_t> parse_step_dir(const std::string& name) {
  const std::string prefix = "step-";
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string_view digits(name.data() + prefix.size(), name.size() - prefix.size());
  if (digits.empty() || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value < 0) return std::nullopt;
  return value;
}

// COMMIT exists and holds the folder's step (written as "<step>\n").
bool is_committed(const fs::path& folder, std::int64_t step) {
  std::ifstream in(folder / kCommitFile);
  if (!in) return false;
  std::string text;
  std::getline(in, text);
  return text == std::to_string(step);
}

bool state_opens(const fs::path& state) {
  if (!fs::is_regular_file(state)) return false;
  try {
    h5::File file = h5::open_file(state);
    file.close();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<hsize_t> dims_of(const std::string& key, const StateDict::Array& array, std::size_t n) {
  if (array.shape.empty()) return {static_cast<hsize_t>(n)};
  std::vector<hsize_t> dims;
  hsize_t product = 1;
  for (std::int64_t d : array.shape) {
    if (d < 0) throw std::invalid_argument("checkpoint entry '" + key + "' has a negative dimension");
    dims.push_back(static_cast<hsize_t>(d));
    product *= static_cast<hsize_t>(d);
  }
  if (product != n)
    throw std::invalid_argument("checkpoint entry '" + key + "' has " + std::to_string(n) +
                                " elements but its shape holds " + std::to_string(product));
  return dims;
}

// Everything that would make save() fail for the content (rather than for I/O) is checked before
// anything is written.
void validate_entries(const StateDict& state) {
  const auto& entries = state.entries();
  for (const auto& [key, array] : entries) {
    if (key.empty() || key.front() == '/' || key.back() == '/')
      throw std::invalid_argument("checkpoint key '" + key + "' is empty or starts/ends with '/'");
    std::size_t start = 0;
    while (start <= key.size()) {
      const std::size_t slash = std::min(key.find('/', start), key.size());
      const std::string part = key.substr(start, slash - start);
      if (part.empty() || part == "." || part == "..")
        throw std::invalid_argument("checkpoint key '" + key + "' has an empty, '.' or '..' component");
      start = slash + 1;
    }
    if (key.find('\0') != std::string::npos) throw std::invalid_argument("checkpoint key contains NUL");
    // "a" would have to be a dataset and a group at once if "a/..." exists.
    const std::string below = key + "/";
    const auto next = entries.lower_bound(below);
    if (next != entries.end() && next->first.compare(0, below.size(), below) == 0)
      throw std::invalid_argument("checkpoint key '" + key + "' is also a prefix of key '" + next->first + "'");
    std::visit(
        [&](const auto& data) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(data)>, std::string>) dims_of(key, array, data.size());
        },
        array.data);
  }
}

void write_state(const fs::path& path, std::int64_t step, const StateDict& state) {
  h5::File file = h5::create_file(path, /*exclusive=*/false);
  h5::write_attribute(file, "schema_version", kSchemaVersion);
  h5::write_attribute(file, "step", step);
  for (const auto& [key, array] : state.entries()) {
    std::visit(
        [&](const auto& data) {
          using D = std::decay_t<decltype(data)>;
          if constexpr (std::is_same_v<D, std::string>) {
            h5::write_string_dataset(file, key, data);
          } else {
            using T = typename D::value_type;
            h5::Dataset dataset =
                h5::write_array<T>(file, key, std::span<const T>(data), dims_of(key, array, data.size()));
            if (array.shape.empty()) h5::write_attribute(dataset, kUnshapedAttr, std::int64_t{1});
            dataset.close();
          }
        },
        array.data);
  }
  file.close();
}

template <class T>
StateDict::Array read_numeric(const h5::Dataset& dataset) {
  std::vector<hsize_t> dims;
  std::vector<T> values = h5::read_array<T>(dataset, &dims);
  StateDict::Array array;
  if (!h5::has_attribute(dataset, kUnshapedAttr))
    for (hsize_t d : dims) array.shape.push_back(static_cast<std::int64_t>(d));
  array.data = std::move(values);
  return array;
}

// Adds every dataset below `group` (path prefix `prefix`) to `out`, keyed by its path.
void read_group(const h5::File& file, const h5::Group& group, const std::string& prefix, StateDict& out) {
  for (const auto& name : h5::member_names(group)) {
    const std::string key = prefix.empty() ? name : prefix + "/" + name;
    switch (h5::object_kind(group, name)) {
      case h5::ObjectKind::group: {
        h5::Group child = h5::open_group(group, name);
        read_group(file, child, key, out);
        child.close();
        break;
      }
      case h5::ObjectKind::dataset: {
        h5::Dataset dataset = h5::open_dataset(file, key);
        const h5::ElementInfo info = h5::element_info(dataset);
        StateDict::Array array;
        if (info.type_class == H5T_FLOAT && info.size == sizeof(float))
          array = read_numeric<float>(dataset);
        else if (info.type_class == H5T_FLOAT && info.size == sizeof(double))
          array = read_numeric<double>(dataset);
        else if (info.type_class == H5T_INTEGER && info.size == sizeof(std::int64_t) && info.is_signed)
          array = read_numeric<std::int64_t>(dataset);
        else if (info.type_class == H5T_STRING)
          array.data = h5::read_string_dataset(file, key);
        else
          throw std::runtime_error(dataset.where() + " is not float32, float64, int64 or a string");
        dataset.close();
        out.entries()[key] = std::move(array);
        break;
      }
      case h5::ObjectKind::other:
        throw std::runtime_error(group.where() + "/" + name + " is neither a group nor a dataset");
    }
  }
}

std::string utc_stamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &tm);
  return text;
}

// Committed steps in dir, newest first.
std::vector<std::int64_t> committed_steps(const fs::path& dir) {
  std::vector<std::int64_t> steps;
  if (!fs::is_directory(dir)) return steps;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_directory()) continue;
    const auto step = parse_step_dir(entry.path().filename().string());
    if (step && is_committed(entry.path(), *step)) steps.push_back(*step);
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

// Removes a committed checkpoint: COMMIT first (made durable), so that a crash in the middle of
// the removal leaves an uncommitted folder, never a committed one with missing state.
void remove_checkpoint(const fs::path& folder) {
  fs::remove(folder / kCommitFile);
  fsync_directory(folder);
  fs::remove_all(folder);
}

}  // namespace

CheckpointStore::CheckpointStore(fs::path dir) : dir_(std::move(dir)) {}

void CheckpointStore::save(std::int64_t step, const StateDict& state, int keep) {
  if (step < 0) throw std::invalid_argument("checkpoint step must be >= 0");
  if (keep < 1) throw std::invalid_argument("checkpoint retention keep must be >= 1");
  validate_entries(state);

  const fs::path folder = dir_ / step_dir_name(step);
  const bool dir_existed = fs::is_directory(dir_);
  fs::create_directories(folder);
  if (!dir_existed && dir_.has_parent_path()) fsync_directory(dir_.parent_path());
  fsync_directory(dir_);
  const fs::path commit = folder / kCommitFile;
  if (fs::exists(commit)) {
    fs::remove(commit);
    fsync_directory(folder);
  }

  const fs::path state_path = folder / kStateFile;
  fs::path tmp = state_path;
  tmp += ".tmp";
  try {
    write_state(tmp, step, state);
    fsync_file(tmp);
    rename_atomic(tmp, state_path);
  } catch (...) {
    std::error_code ignored;  // best effort: the error being reported is the one that matters
    fs::remove(tmp, ignored);
    throw;
  }
  write_file_atomic(commit, std::to_string(step) + "\n");

  const auto steps = committed_steps(dir_);
  if (steps.size() > static_cast<std::size_t>(keep)) {
    for (std::size_t i = static_cast<std::size_t>(keep); i < steps.size(); ++i)
      remove_checkpoint(dir_ / step_dir_name(steps[i]));
    fsync_directory(dir_);
  }
}

std::optional<std::int64_t> CheckpointStore::latest_committed() const {
  const auto steps = committed_steps(dir_);
  if (steps.empty()) return std::nullopt;
  return steps.front();
}

bool CheckpointStore::committed(std::int64_t step) const { return is_committed(dir_ / step_dir_name(step), step); }

StateDict CheckpointStore::load(std::int64_t step) const {
  const fs::path folder = dir_ / step_dir_name(step);
  if (!is_committed(folder, step))
    throw std::runtime_error("checkpoint " + folder.string() + " is not committed (no valid COMMIT)");
  const fs::path state_path = folder / kStateFile;
  h5::File file = h5::open_file(state_path);
  const std::int64_t stored = h5::read_int_attribute(file, "step");
  if (stored != step)
    throw std::runtime_error(state_path.string() + " holds step " + std::to_string(stored) + ", expected " +
                             std::to_string(step));
  StateDict state;
  read_group(file, file, "", state);  // a file id is also the location of its root group
  file.close();
  return state;
}

std::vector<fs::path> CheckpointStore::quarantine_incomplete() {
  std::vector<fs::path> moved;
  if (!fs::is_directory(dir_)) return moved;
  std::vector<fs::path> bad;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (!entry.is_directory()) continue;
    const auto step = parse_step_dir(entry.path().filename().string());
    if (!step) continue;
    if (!is_committed(entry.path(), *step) || !state_opens(entry.path() / kStateFile)) bad.push_back(entry.path());
  }
  if (bad.empty()) return moved;

  const fs::path quarantine = dir_.parent_path() / "quarantine";
  fs::create_directories(quarantine);
  const std::string stamp = utc_stamp();
  for (const auto& folder : bad) {
    fs::path target = quarantine / (folder.filename().string() + "-" + stamp);
    for (int n = 2; fs::exists(target); ++n)
      target = quarantine / (folder.filename().string() + "-" + stamp + "-" + std::to_string(n));
    fs::rename(folder, target);
    moved.push_back(target);
  }
  fsync_directory(quarantine);
  fsync_directory(dir_);
  return moved;
}

}  // namespace expt::io
