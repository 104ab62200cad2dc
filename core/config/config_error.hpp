// Configuration errors. Every problem found in a config file or a `--set` override is reported as
// `file:line:col: key.path: message` (lines and columns counted from 1), all of them at once,
// sorted by position, before anything runs.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace expt::config {

// Where a piece of configuration text came from. `source` is the file name, or "--set" for a
// command-line override; `source_index` orders sources when errors are sorted (0 the file, k the
// k-th override). line == 0 means "the source as a whole" (e.g. a file that cannot be opened).
struct Position {
  std::string source;
  int source_index = 0;
  int line = 0;
  int col = 0;
};

struct ConfigError {
  std::string file;
  int line = 0;
  int col = 0;
  std::string key_path;  // dotted path of the key concerned (`model.mixer.heads`); empty when none
  std::string message;

  // "file:line:col: key.path: message"; the key path is left out when empty, and line:col when
  // the error concerns the whole file (line 0).
  std::string str() const;
};

class ConfigErrors : public std::runtime_error {
 public:
  explicit ConfigErrors(std::vector<ConfigError> errors);
  const std::vector<ConfigError>& errors() const { return errors_; }

 private:
  std::vector<ConfigError> errors_;
};

// Prints every error (one `file:line:col: key.path: message` line each) and then
// "expt: N configuration error(s)[ in the <what>]; nothing was run" to stderr.
void report_errors(const ConfigErrors& errors, const char* what = nullptr);

// Collects errors while a config is read; hands them out sorted by (source, line, column), in the
// order they were found among errors at the same position.
class ErrorList {
 public:
  void add(const Position& at, std::string key_path, std::string message);
  bool empty() const { return entries_.empty(); }
  std::vector<ConfigError> sorted() const;
  // Throws ConfigErrors with every error, sorted, if there is at least one.
  void throw_if_any() const;

 private:
  struct Entry {
    Position at;
    ConfigError error;
  };
  std::vector<Entry> entries_;
};

}  // namespace expt::config
