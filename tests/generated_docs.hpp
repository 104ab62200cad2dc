// Docs that hold a generated table between two marker comments (docs/config.md's key table,
// docs/sweeps.md's study keys): the text between the markers, for a test to compare with the code.
#pragma once

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

namespace expt::test {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The text of `path` (relative to the source tree) after the line `begin` and before `end`;
// fails the test when either marker is missing or out of order.
inline std::string text_between_markers(const std::string& path, const std::string& begin, const std::string& end) {
  const std::string doc = read_text(std::string(EXPT_SOURCE_DIR) + "/" + path);
  const std::size_t b = doc.find(begin);
  const std::size_t e = doc.find(end);
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  REQUIRE(b < e);
  return doc.substr(b + begin.size(), e - b - begin.size());
}

}  // namespace expt::test
