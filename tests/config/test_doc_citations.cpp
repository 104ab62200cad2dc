// Every citation in the repository resolves inside the repository: a docs file a source comment
// names exists, an equation label it cites, such as "(D3)", occurs in a docs file the same source
// file names (on the same line if that line names one), and nothing cites the reference specs the
// repository does not contain (their file names, a section sign after "spec", numbered sections
// of a doc).
// docs/derivations/README.md describes the convention.
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Equation labels on a line: "(X1)" or "(X12)" with X an upper-case letter, not preceded by a word
// character (so "L(D1)", a function of D1, is not a label).
std::vector<std::string> labels_in(const std::string& line) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i + 3 < line.size(); ++i) {
    if (line[i] != '(' || (i > 0 && is_word_char(line[i - 1]))) continue;
    if (!std::isupper(static_cast<unsigned char>(line[i + 1]))) continue;
    std::size_t j = i + 2;
    while (j < line.size() && j < i + 4 && std::isdigit(static_cast<unsigned char>(line[j]))) ++j;
    if (j > i + 2 && j < line.size() && line[j] == ')') out.push_back(line.substr(i, j - i + 1));
  }
  return out;
}

// docs/....md paths on a line.
std::vector<std::string> docs_in(const std::string& line) {
  static const std::regex path(R"((^|[^A-Za-z0-9_./-])(docs/[A-Za-z0-9_./-]*\.md))");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(line.begin(), line.end(), path); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[2].str());
  return out;
}

// Citations of documents that are not in the repository: the reference specs by name, their
// section numbers (a section sign, "spec 8.2", "layers.md 2.6.1", "section" and a number).
// docs/decisions.md's entries are numbered, so "docs/decisions.md 44" is fine.
const std::regex& outside_citation() {
  static const std::regex re(
      R"(frameworks\.md|DESIGN\.md|shared[/]docs|)"
      "\xC2\xA7"  // the section sign in UTF-8
      R"(|\b[Ss]pec(ification)? ([0-9]|section)|\b(?!decisions\.md)[A-Za-z0-9_-]+\.md (sections? [0-9]|[0-9]+\.[0-9]))"
      R"(|\bsections? [0-9])");
  return re;
}

// The errors of one file's text (`path` is relative to `root`, the repository). A docs file under
// docs/ counts as citing itself, so a derivation's own labels resolve.
std::vector<std::string> citation_errors(const std::string& path, const std::string& text, const fs::path& root) {
  std::vector<std::string> errors;
  std::set<std::string> file_docs;
  if (path.rfind("docs/", 0) == 0) file_docs.insert(path);
  std::vector<std::pair<int, std::string>> lines;
  {
    std::istringstream in(text);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) lines.emplace_back(n, line);
  }
  for (const auto& [n, line] : lines)
    for (const std::string& doc : docs_in(line)) file_docs.insert(doc);
  std::map<std::string, std::string> doc_text;
  for (const std::string& doc : file_docs) {
    if (!fs::is_regular_file(root / doc))
      errors.push_back(path + ": cites " + doc + ", which does not exist");
    else
      doc_text[doc] = read_text(root / doc);
  }
  auto where = [&](int n) { return path + ":" + std::to_string(n) + ": "; };
  for (const auto& [n, line] : lines) {
    if (std::regex_search(line, outside_citation()))
      errors.push_back(where(n) + "cites a document outside the repository: " + line);
    const std::vector<std::string> labels = labels_in(line);
    if (labels.empty()) continue;
    // The docs named on this line, else every docs file the file names.
    std::vector<std::string> candidates = docs_in(line);
    if (candidates.empty()) candidates.assign(file_docs.begin(), file_docs.end());
    for (const std::string& label : labels) {
      bool found = false;
      for (const std::string& doc : candidates) {
        const auto it = doc_text.find(doc);
        found = found || (it != doc_text.end() && it->second.find(label) != std::string::npos);
      }
      if (!found)
        errors.push_back(where(n) + "label " + label + " is in none of the docs files it cites" +
                         (candidates.empty() ? std::string(" (it cites none)") : std::string()));
    }
  }
  return errors;
}

bool is_source(const fs::path& p) {
  static const std::set<std::string> extensions = {".cpp",  ".hpp", ".h",   ".py", ".sh",
                                                   ".yaml", ".yml", ".txt", ".md", ".cmake"};
  return extensions.count(p.extension().string()) == 1;
}

}  // namespace

TEST_CASE("the citation check accepts resolvable citations and flags the others", "[config][docs]") {
  const fs::path root = EXPT_SOURCE_DIR;
  auto errors = [&](const std::string& text) { return citation_errors("kernels/x.cpp", text, root).size(); };
  CHECK(errors("// (D3), docs/derivations/gla.md: the intra-chunk gradients") == 0);
  CHECK(errors("// docs/derivations/gla.md\n// (F1) decayed queries, (F5) decayed keys") == 0);
  CHECK(errors("// L(D1) = 3.5 is a function value, not a label") == 0);
  CHECK(errors("// (D9), docs/derivations/gla.md") == 1);                                     // no such label there
  CHECK(errors("// (U3), docs/derivations/gla.md\n// docs/derivations/delta_rule.md") == 1);  // wrong file on its line
  CHECK(errors("// (F1) decayed queries") == 1);                                              // cites no docs file
  CHECK(errors("// see docs/derivations/no_such_kernel.md") == 1);
  CHECK(errors("// (shared"
               "/docs/layers.md)") == 1);
  CHECK(errors("// the rule of frameworks"
               ".md") == 1);
  CHECK(errors("// spec \xC2\xA7"
               "4.4") == 1);
  CHECK(errors("// layers.md 2.6.1") == 1);
  CHECK(errors("// optimizers.md section"
               " 3") == 1);
  CHECK(errors("// Spec 8.5.3") == 1);
}

TEST_CASE("every citation in the sources and docs resolves to a file and label in docs", "[config][docs]") {
  const fs::path root = EXPT_SOURCE_DIR;
  // This file holds bad citations as test data above.
  const std::string self = "tests/config/test_doc_citations.cpp";
  std::vector<std::string> errors;
  int files = 0;
  auto check = [&](const fs::path& file) {
    const std::string rel = fs::relative(file, root).generic_string();
    if (rel == self) return;
    ++files;
    for (std::string& e : citation_errors(rel, read_text(file), root)) errors.push_back(std::move(e));
  };
  for (const char* folder :
       {"core", "kernels", "optimizers", "experiments", "analysis", "tests", "bench", "scripts", "configs", "docs"}) {
    REQUIRE(fs::is_directory(root / folder));
    for (const auto& entry : fs::recursive_directory_iterator(root / folder))
      if (entry.is_regular_file() && is_source(entry.path())) check(entry.path());
  }
  check(root / "README.md");
  check(root / "CMakeLists.txt");
  CHECK(files > 100);
  std::ostringstream all;
  for (const std::string& e : errors) all << e << "\n";
  INFO(all.str());
  CHECK(errors.empty());
}
