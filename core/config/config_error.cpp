#include "core/config/config_error.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>

namespace expt::config {

std::string ConfigError::str() const {
  std::string s = file;
  if (line > 0) {
    s.append(":").append(std::to_string(line));
    s.append(":").append(std::to_string(col));
  }
  s.append(": ");
  if (!key_path.empty()) s.append(key_path).append(": ");
  s.append(message);
  return s;
}

namespace {

std::string join_lines(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const ConfigError& e : errors) {
    if (!s.empty()) s += '\n';
    s += e.str();
  }
  return s;
}

}  // namespace

ConfigErrors::ConfigErrors(std::vector<ConfigError> errors)
    : std::runtime_error(join_lines(errors)), errors_(std::move(errors)) {}

void ErrorList::add(const Position& at, std::string key_path, std::string message) {
  entries_.push_back({at, ConfigError{at.source, at.line, at.col, std::move(key_path), std::move(message)}});
}

std::vector<ConfigError> ErrorList::sorted() const {
  std::vector<std::size_t> order(entries_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const Position& pa = entries_[a].at;
    const Position& pb = entries_[b].at;
    if (pa.source_index != pb.source_index) return pa.source_index < pb.source_index;
    if (pa.line != pb.line) return pa.line < pb.line;
    return pa.col < pb.col;
  });
  std::vector<ConfigError> out;
  out.reserve(order.size());
  for (std::size_t i : order) out.push_back(entries_[i].error);
  return out;
}

void ErrorList::throw_if_any() const {
  if (!entries_.empty()) throw ConfigErrors(sorted());
}

void report_errors(const ConfigErrors& errors, const char* what) {
  for (const auto& err : errors.errors()) std::fprintf(stderr, "%s\n", err.str().c_str());
  std::fprintf(stderr, "expt: %zu configuration error(s)%s%s; nothing was run\n", errors.errors().size(),
               what != nullptr ? " in the " : "", what != nullptr ? what : "");
}

}  // namespace expt::config
