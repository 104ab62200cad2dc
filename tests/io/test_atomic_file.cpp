// Durable file operations: content, no temporary left behind, errors that name the path.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "core/io/atomic_file.hpp"
#include "io_test_util.hpp"

namespace fs = std::filesystem;
using expt::io::test::read_whole_file;
using expt::io::test::TempDir;
using expt::io::test::write_whole_file;

namespace {
// Every name in the directory (to see that nothing else, such as a .tmp, was left).
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Expects fn() to throw std::runtime_error whose message names `path`.
template <class Fn>
void require_throws_naming(Fn fn, const fs::path& path) {
  try {
    fn();
    FAIL("no exception for " << path);
  } catch (const std::runtime_error& e) {
    INFO(e.what());
    REQUIRE(std::string(e.what()).find(path.string()) != std::string::npos);
  }
}
}  // namespace

TEST_CASE("write_file_atomic writes the content and leaves no temporary file", "[atomic]") {
  TempDir dir;
  const fs::path file = dir / "status.json";
  std::string content = "{\"a\": 1}\n";
  content += std::string(1, '\0') + "binary\xff";  // bytes, not text: every byte must survive
  expt::io::write_file_atomic(file, content);
  REQUIRE(read_whole_file(file) == content);
  REQUIRE(listing(dir.path()) == std::vector<std::string>{"status.json"});

  // Replacing: the new content in full, still no temporary.
  const std::string bigger(100000, 'x');
  expt::io::write_file_atomic(file, bigger);
  REQUIRE(read_whole_file(file) == bigger);
  expt::io::write_file_atomic(file, "");
  REQUIRE(read_whole_file(file).empty());
  REQUIRE(listing(dir.path()) == std::vector<std::string>{"status.json"});
}

TEST_CASE("write_file_atomic into an unwritable directory throws naming the path", "[atomic]") {
  TempDir dir;
  const fs::path locked = dir / "locked";
  fs::create_directory(locked);
  REQUIRE(chmod(locked.c_str(), 0555) == 0);
  // Root ignores permission bits; /sys refuses new files even to root (EACCES).
  const fs::path target = geteuid() != 0 ? locked / "result.json" : fs::path("/sys/expt_io_unwritable_test.json");
  require_throws_naming([&] { expt::io::write_file_atomic(target, "data"); }, target);
  REQUIRE_FALSE(fs::exists(target));
  chmod(locked.c_str(), 0755);
  REQUIRE(listing(locked).empty());

  const fs::path missing = dir / "no_such_dir" / "file.txt";
  require_throws_naming([&] { expt::io::write_file_atomic(missing, "data"); }, missing);
}

TEST_CASE("a failed write keeps the previous file", "[atomic]") {
  TempDir dir;
  const fs::path file = dir / "state.json";
  expt::io::write_file_atomic(file, "old");
  // The temporary name is taken by a directory, so the new write cannot even start.
  fs::create_directory(dir / "state.json.tmp");
  REQUIRE_THROWS_AS(expt::io::write_file_atomic(file, "new"), std::runtime_error);
  REQUIRE(read_whole_file(file) == "old");
}

TEST_CASE("append_line_durable appends whole lines and repairs a torn last line", "[atomic]") {
  TempDir dir;
  const fs::path log = dir / "attempts.jsonl";
  expt::io::append_line_durable(log, "{\"event\":\"start\"}");
  expt::io::append_line_durable(log, "{\"event\":\"end\"}");
  REQUIRE(read_whole_file(log) == "{\"event\":\"start\"}\n{\"event\":\"end\"}\n");

  // A crash in the middle of a line: the next line must still start on a line of its own.
  write_whole_file(log, "{\"event\":\"start\"}\n{\"event\":\"sta");
  expt::io::append_line_durable(log, "{\"event\":\"fail\"}");
  REQUIRE(read_whole_file(log) == "{\"event\":\"start\"}\n{\"event\":\"sta\n{\"event\":\"fail\"}\n");

  const fs::path missing = dir / "missing_dir" / "log.txt";
  require_throws_naming([&] { expt::io::append_line_durable(missing, "x"); }, missing);
}

TEST_CASE("rename_atomic, fsync_file and fsync_directory report errors with the path", "[atomic]") {
  TempDir dir;
  const fs::path a = dir / "a.tmp", b = dir / "a";
  write_whole_file(a, "payload");
  expt::io::rename_atomic(a, b);
  REQUIRE_FALSE(fs::exists(a));
  REQUIRE(read_whole_file(b) == "payload");
  expt::io::fsync_file(b);
  expt::io::fsync_directory(dir.path());

  require_throws_naming([&] { expt::io::rename_atomic(dir / "nope.tmp", dir / "nope"); }, dir / "nope.tmp");
  require_throws_naming([&] { expt::io::fsync_file(dir / "nope"); }, dir / "nope");
  require_throws_naming([&] { expt::io::fsync_directory(dir / "nodir"); }, dir / "nodir");
}
