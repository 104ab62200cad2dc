// Read-only memory-mapped files and glob expansion, for the corpora of the language-model tasks.
// A token file of many gigabytes is mapped, not read: the kernel pages in only the windows that
// batches touch, and every rank of a machine shares the same page cache.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace expt::data {

class MappedFile {
 public:
  // Maps the whole file read-only. Throws std::runtime_error naming the path and strerror(errno)
  // when it cannot be opened, is not a regular file, or cannot be mapped. An empty file maps to an
  // empty span.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }
  std::size_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

// The files named by `pattern`: a glob pattern (containing *, ? or [) gives its matches in sorted
// order; any other text is one file name, returned as is. Throws std::runtime_error when a pattern
// matches nothing.
std::vector<std::filesystem::path> expand_pattern(const std::string& pattern);

}  // namespace expt::data
