// Helpers for the data tests: a scratch directory per test, files written byte by byte, and a
// batch's rows as vectors.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/data/task.hpp"

namespace expt::data::test {

// A fresh directory under the system temp dir, removed with its content at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("expt-data-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Appends v as `width` little-endian bytes.
inline void put_le(std::vector<std::uint8_t>& bytes, std::uint64_t v, int width) {
  for (int i = 0; i < width; ++i) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// Row i of a batch: its inputs followed by its targets.
inline std::vector<std::int32_t> row(const Batch& b, int i) {
  const auto first = static_cast<std::ptrdiff_t>(i) * b.length;
  std::vector<std::int32_t> r(b.inputs.begin() + first, b.inputs.begin() + first + b.length);
  r.insert(r.end(), b.targets.begin() + first, b.targets.begin() + first + b.length);
  return r;
}

inline std::vector<std::vector<std::int32_t>> rows(const Batch& b) {
  std::vector<std::vector<std::int32_t>> out;
  for (int i = 0; i < b.batch; ++i) out.push_back(row(b, i));
  return out;
}

}  // namespace expt::data::test
