// expt serve's reader (experiments/serve/served_directory.hpp): which directories it accepts, which
// files it serves, and the bound on its cache of curves. The HTTP side and the JSON answers over a
// real sweep are tested by tests/scripts/serve_*.sh.
#include "experiments/serve/served_directory.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/io/metrics.hpp"

namespace fs = std::filesystem;
using expt::serve::ServedDirectory;

namespace {

struct TempTree {
  fs::path root;
  TempTree() {
    std::string pattern = (fs::temp_directory_path() / "expt-serve-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root = pattern;
  }
  ~TempTree() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A trial of a sweep with `rows` train rows in two closed segments and an open-looking third.
void write_trial(const fs::path& sweep, const std::string& id, int rows) {
  const fs::path dir = sweep / "trials" / id;
  const expt::io::EvalSchema schema{{"loss@8"}, {}};
  for (int first : {0, rows / 2 + 1, rows + 1}) {
    expt::io::MetricsSegmentWriter w(dir / "metrics" / ("seg-1-" + std::to_string(first) + ".h5"), schema, 1, first);
    const int last = first == 0 ? rows / 2 : rows;
    for (int s = std::max(first, 1); s <= last && first <= rows; ++s)
      w.append_train({s, s * 10, 0.1 * s, 1.0f / static_cast<float>(s), 1e-3f, 1, 1, 1, 0, 0});
    w.close();
  }
}

}  // namespace

TEST_CASE("ServedDirectory refuses what is neither a sweep nor a trial directory", "[serve]") {
  TempTree t;
  REQUIRE_THROWS_WITH(ServedDirectory(t.root / "missing"), Catch::Contains("no such directory"));
  write_file(t.root / "file", "x");
  REQUIRE_THROWS_WITH(ServedDirectory(t.root / "file"), Catch::Contains("not a directory"));
  REQUIRE_THROWS_WITH(ServedDirectory(t.root), Catch::Contains("neither a sweep directory"));
  write_file(t.root / "status.json", "{}");
  REQUIRE(ServedDirectory(t.root).kind() == ServedDirectory::Kind::sweep);
}

TEST_CASE("ServedDirectory serves only files under its directory", "[serve]") {
  TempTree t;
  write_file(t.root / "sweep" / "status.json", R"({"counts": {}, "trials": []})");
  write_file(t.root / "sweep" / "trials" / "abc" / "log.txt", "log");
  write_file(t.root / "secret.txt", "secret");
  fs::create_symlink(t.root / "secret.txt", t.root / "sweep" / "link");
  const ServedDirectory dir(t.root / "sweep");
  REQUIRE(dir.resolve_file("trials/abc/log.txt") == fs::canonical(t.root / "sweep/trials/abc/log.txt"));
  for (const char* bad : {"../secret.txt", "trials/../../secret.txt", "/etc/passwd", "./status.json", "link", "trials",
                          "", "trials\\abc", "missing.txt"})
    REQUIRE_FALSE(dir.resolve_file(bad).has_value());
}

TEST_CASE("ServedDirectory keeps its cache of curves under its byte bound", "[serve]") {
  TempTree t;
  write_file(t.root / "status.json", R"({"counts": {}, "trials": []})");
  for (const char* id : {"aa", "bb", "cc"}) write_trial(t.root, id, 400);
  const std::size_t one = ServedDirectory(t.root).metrics_json("aa", 2000)->size();
  ServedDirectory dir(t.root, one * 2 + one / 2);  // room for two answers, not three
  for (const char* id : {"aa", "bb", "cc", "aa"}) {
    const auto body = dir.metrics_json(id, 2000);
    REQUIRE(body.has_value());
    const auto j = nlohmann::json::parse(*body);
    // The two closed segments (1..200, 201..400); the third, newest one is left out.
    REQUIRE(j.at("train_rows") == 400);
    REQUIRE(j.at("left_out") == "seg-1-401.h5");
    REQUIRE(dir.metrics_cache_size() <= one * 2 + one / 2);
  }
  REQUIRE(dir.metrics_cache_size() >= one);
  REQUIRE_FALSE(dir.metrics_json("zz", 2000).has_value());     // no such trial
  REQUIRE_FALSE(dir.metrics_json("../aa", 2000).has_value());  // not an id
}
