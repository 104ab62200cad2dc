#include "core/io/results.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <type_traits>
#include <variant>

#include "build_provenance.hpp"  // EXPT_GIT_SHA, generated at build time (CMakeLists.txt)
#include "core/io/atomic_file.hpp"
#include "core/io/metrics_format.hpp"
#ifndef EXPT_COMPILER
#define EXPT_COMPILER "unknown"
#endif

namespace expt::io {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMessageBytes = 4096;

struct SegmentFile {
  fs::path path;
  std::int64_t attempt = 0, first_step = 0;
  bool quarantined = false;  // only its "<name>.quarantined" marker is left: no rows, first_step counts
};

constexpr std::string_view kQuarantineMarker = ".quarantined";

// A decimal number without sign or leading zeros ("0" itself is fine), so that every segment has
// exactly one spelling and two names cannot denote the same (attempt, first_step).
std::optional<std::int64_t> parse_count(std::string_view s) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < 0) return std::nullopt;
  return value;
}

// "seg-<attempt>-<first_step>.h5"
std::optional<SegmentFile> parse_segment_name(const fs::path& path) {
  const std::string name = path.filename().string();
  const std::string prefix = "seg-", suffix = ".h5";
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  const std::string_view core(name.data() + prefix.size(), name.size() - prefix.size() - suffix.size());
  const std::size_t dash = core.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const auto attempt = parse_count(core.substr(0, dash));
  const auto first = parse_count(core.substr(dash + 1));
  if (!attempt || !first || *attempt < 1) return std::nullopt;
  return SegmentFile{path, *attempt, *first};
}

struct SegmentRows {
  std::vector<TrainRow> train;
  std::vector<EvalRow> eval;
  std::vector<EventRow> events;
  EvalSchema schema;
};

SegmentRows read_segment(const SegmentFile& seg) {
  h5::File file = h5::open_file(seg.path);
  if (h5::read_int_attribute(file, "attempt") != seg.attempt ||
      h5::read_int_attribute(file, "first_step") != seg.first_step)
    throw std::runtime_error(seg.path.string() + ": attributes attempt/first_step do not match the file name");
  SegmentRows rows;
  rows.train = detail::read_train(file);
  rows.eval = detail::read_eval(file, &rows.schema);
  rows.events = detail::read_events(file);
  file.close();
  return rows;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string build_info() {
  nlohmann::json j = {{"compiler", EXPT_COMPILER},
                      {"cxx_standard", static_cast<long>(__cplusplus)},
                      {"hdf5_library", h5::library_version()},
                      {"hdf5_headers", std::to_string(H5_VERS_MAJOR) + "." + std::to_string(H5_VERS_MINOR) + "." +
                                           std::to_string(H5_VERS_RELEASE)},
#ifdef NDEBUG
                      {"assertions", false}
#else
                      {"assertions", true}
#endif
  };
  return j.dump();
}

void write_attribute_group(const h5::File& file, const std::string& name,
                           const std::vector<std::pair<std::string, AttributeValue>>& attrs) {
  h5::Group group = h5::create_group(file, name);
  std::set<std::string> seen;
  for (const auto& [key, value] : attrs) {
    if (key.empty() || !seen.insert(key).second)
      throw std::invalid_argument("/" + name + ": attribute key '" + key + "' is empty or duplicated");
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string>)
            h5::write_attribute(group, key, std::string_view(v));
          else
            h5::write_attribute(group, key, v);
        },
        value);
  }
  group.close();
}

}  // namespace

std::string_view build_git_sha() { return EXPT_GIT_SHA; }

namespace {

void write_result_file(const fs::path& tmp, const ResultInfo& info, const TrialSummary& summary,
                       const EvalSchema& schema, const ConsolidatedSegments& rows) {
  h5::File file = h5::create_file(tmp, /*exclusive=*/false);
  h5::write_attribute(file, "schema_version", kSchemaVersion);
  h5::write_attribute(file, "trial_id", std::string_view(info.trial_id));
  h5::write_attribute(file, "config_hash", std::string_view(info.config_hash));
  h5::write_attribute(file, "git_sha", build_git_sha());
  h5::write_attribute(file, "build_info", std::string_view(build_info()));
  h5::write_attribute(file, "machine", std::string_view(info.machine));
  h5::write_attribute(file, "created_utc", std::string_view(utc_now()));
  h5::write_attribute(file, "status", std::string_view(summary.status));
  h5::write_string_dataset(file, "config", info.config_yaml);
  write_attribute_group(file, "hparams", info.hparams);
  write_attribute_group(file, "scale", info.scale);

  detail::MetricsDatasets sets = detail::create_metrics_datasets(file, schema);
  detail::append_train_rows(sets.train, rows.train);
  detail::append_eval_rows(sets, schema, rows.eval);
  detail::append_event_rows(sets.events, rows.events);
  sets.close();

  std::int64_t skipped = 0;
  for (const auto& r : rows.train) skipped += r.skipped != 0;
  h5::Group group = h5::create_group(file, "summary");
  h5::write_attribute(group, "status", std::string_view(summary.status));
  h5::write_attribute(group, "final_eval_loss", summary.final_eval_loss);
  h5::write_attribute(group, "best_eval_loss", summary.best_eval_loss);
  h5::write_attribute(group, "diverged_step", summary.diverged_step);
  h5::write_attribute(group, "tokens_seen", summary.tokens_seen);
  h5::write_attribute(group, "steps_done", summary.steps_done);
  h5::write_attribute(group, "wall_s", summary.wall_s);
  h5::write_attribute(group, "n_attempts", static_cast<std::int64_t>(summary.n_attempts));
  h5::write_attribute(group, "n_skipped_steps", skipped);
  h5::write_attribute(group, "message", std::string_view(detail::truncate_utf8(summary.message, kMessageBytes)));
  group.close();
  file.close();
}

// Steps of the consolidated train or eval rows must be strictly increasing; a violation means a
// segment broke the writer's contract (not written by MetricsSegmentWriter) and is reported.
template <class Row>
void require_increasing(const std::vector<Row>& rows, const char* what, const fs::path& trial_dir) {
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (rows[i].step <= rows[i - 1].step)
      throw std::runtime_error("consolidating " + trial_dir.string() + ": " + what + " step " +
                               std::to_string(rows[i].step) + " follows step " + std::to_string(rows[i - 1].step));
}

}  // namespace

ConsolidatedSegments read_consolidated_segments(const fs::path& trial_dir, bool leave_out_newest) {
  ConsolidatedSegments out;
  ConsolidationReport& report = out.report;
  std::vector<SegmentFile> segments;
  const fs::path metrics_dir = trial_dir / "metrics";
  if (fs::exists(metrics_dir)) {
    for (const auto& entry : fs::directory_iterator(metrics_dir)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("seg-", 0) == 0 && entry.path().extension() == kQuarantineMarker) {
        if (auto seg = parse_segment_name(entry.path().parent_path() / entry.path().stem())) {
          seg->quarantined = true;
          segments.push_back(*seg);
        }
        continue;
      }
      if (name.rfind("seg-", 0) != 0 || entry.path().extension() != ".h5") continue;
      if (auto seg = parse_segment_name(entry.path()))
        segments.push_back(*seg);
      else
        report.skipped_unreadable.push_back(entry.path());
    }
  }
  std::sort(segments.begin(), segments.end(), [](const SegmentFile& a, const SegmentFile& b) {
    return std::pair(a.attempt, a.first_step) < std::pair(b.attempt, b.first_step);
  });

  // cutoff[i] = min first_step over the segments after i (all of them, readable or not).
  std::vector<std::int64_t> cutoff(segments.size(), std::numeric_limits<std::int64_t>::max());
  for (std::size_t i = segments.size(); i-- > 1;) cutoff[i - 1] = std::min(cutoff[i], segments[i].first_step);
  if (leave_out_newest && !segments.empty()) {
    out.left_out = segments.back().path;
    segments.pop_back();
  }

  bool have_schema = false;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].quarantined) continue;  // reported when it was moved
    SegmentRows rows;
    try {
      rows = read_segment(segments[i]);
    } catch (const std::exception&) {
      // By construction the tail of a crashed attempt; the caller records it (attempts.jsonl).
      report.skipped_unreadable.push_back(segments[i].path);
      continue;
    }
    if (!have_schema) {
      out.schema = rows.schema;
      have_schema = true;
    } else if (!(rows.schema == out.schema)) {
      throw std::runtime_error("consolidating " + trial_dir.string() + ": " + segments[i].path.string() +
                               " has another eval schema than " + report.used.front().string());
    }
    const std::int64_t end = cutoff[i];
    for (auto& r : rows.train)
      if (r.step < end) out.train.push_back(r);
    for (auto& r : rows.eval)
      if (r.step < end) out.eval.push_back(std::move(r));
    for (auto& r : rows.events)
      if (r.step < end) out.events.push_back(std::move(r));
    report.used.push_back(segments[i].path);
  }
  return out;
}

ConsolidationReport write_result(const fs::path& trial_dir, const ResultInfo& info, const TrialSummary& summary) {
  static const std::set<std::string> kStatuses = {"COMPLETED", "DIVERGED", "FAILED", "RUNNING"};
  if (kStatuses.count(summary.status) == 0)
    throw std::invalid_argument("write_result: unknown status '" + summary.status + "'");

  ConsolidatedSegments all = read_consolidated_segments(trial_dir, false);
  ConsolidationReport& report = all.report;
  require_increasing(all.train, "train", trial_dir);
  require_increasing(all.eval, "eval", trial_dir);

  const fs::path final_path = trial_dir / "result.h5";
  fs::path tmp = final_path;
  tmp += ".tmp";
  try {
    write_result_file(tmp, info, summary, all.schema, all);
    fsync_file(tmp);
    rename_atomic(tmp, final_path);
  } catch (...) {
    std::error_code ignored;  // best effort: the error being reported is the one that matters
    fs::remove(tmp, ignored);
    throw;
  }
  return report;
}

fs::path move_to_quarantine(const fs::path& file, const fs::path& trial_dir) {
  const fs::path quarantine = trial_dir / "quarantine";
  fs::create_directories(quarantine);
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  const std::string base = file.filename().string() + "-" + stamp;
  fs::path target = quarantine / base;
  for (int n = 2; fs::exists(target); ++n) target = quarantine / (base + "-" + std::to_string(n));
  fs::rename(file, target);
  fsync_directory(quarantine);
  fsync_directory(file.parent_path());
  return target;
}

std::vector<fs::path> quarantine_unreadable_segments(const fs::path& trial_dir) {
  std::vector<fs::path> moved;
  const fs::path metrics_dir = trial_dir / "metrics";
  if (!fs::is_directory(metrics_dir)) return moved;
  std::vector<SegmentFile> bad;
  for (const auto& entry : fs::directory_iterator(metrics_dir)) {
    if (entry.path().extension() != ".h5") continue;
    const auto seg = parse_segment_name(entry.path());
    if (!seg) continue;  // not a segment name: write_result reports it, nothing to quarantine
    try {
      const SegmentRows rows = read_segment(*seg);
      require_increasing(rows.train, "train", trial_dir);
      require_increasing(rows.eval, "eval", trial_dir);
    } catch (const std::exception&) {
      bad.push_back(*seg);
    }
  }
  for (const SegmentFile& seg : bad) {
    fs::path marker = seg.path;
    marker += kQuarantineMarker;
    const fs::path target = move_to_quarantine(seg.path, trial_dir);
    write_file_atomic(marker, target.filename().string() + "\n");
    moved.push_back(target);
  }
  return moved;
}

TrialSummary read_summary(const fs::path& result_h5) {
  h5::File file = h5::open_file(result_h5);
  h5::Group group = h5::open_group(file, "summary");
  TrialSummary s;
  s.status = h5::read_string_attribute(group, "status");
  s.final_eval_loss = h5::read_double_attribute(group, "final_eval_loss");
  s.best_eval_loss = h5::read_double_attribute(group, "best_eval_loss");
  s.diverged_step = h5::read_int_attribute(group, "diverged_step");
  s.tokens_seen = h5::read_int_attribute(group, "tokens_seen");
  s.steps_done = h5::read_int_attribute(group, "steps_done");
  s.wall_s = h5::read_double_attribute(group, "wall_s");
  s.n_attempts = static_cast<int>(h5::read_int_attribute(group, "n_attempts"));
  s.n_skipped_steps = h5::read_int_attribute(group, "n_skipped_steps");
  s.message = h5::read_string_attribute(group, "message");
  group.close();
  file.close();
  return s;
}

std::vector<std::pair<std::string, AttributeValue>> read_attribute_group(const fs::path& result_h5,
                                                                         const std::string& name) {
  h5::File file = h5::open_file(result_h5);
  h5::Group group = h5::open_group(file, name);
  std::vector<std::pair<std::string, AttributeValue>> out;
  for (const auto& key : h5::attribute_names(group)) {
    switch (h5::attribute_class(group, key)) {
      case h5::AttributeClass::integer:
        out.emplace_back(key, h5::read_int_attribute(group, key));
        break;
      case h5::AttributeClass::floating:
        out.emplace_back(key, h5::read_double_attribute(group, key));
        break;
      case h5::AttributeClass::string:
        out.emplace_back(key, h5::read_string_attribute(group, key));
        break;
      case h5::AttributeClass::other:
        throw std::runtime_error(result_h5.string() + ":/" + name + "@" + key + " is not a number or a string");
    }
  }
  group.close();
  file.close();
  return out;
}

}  // namespace expt::io
