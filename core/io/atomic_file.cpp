#include "core/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace expt::io {

namespace {

[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& path, int err) {
  throw std::runtime_error(what + " '" + path.string() + "': " + std::strerror(err));
}

// Closes a file descriptor on scope exit unless it was closed (and checked) explicitly.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // close() can report a deferred write error (NFS); it is checked, never ignored.
  void close_checked(const std::filesystem::path& path) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_errno("cannot close", path, errno);
  }

 private:
  int fd_;
};

int open_or_throw(const std::filesystem::path& path, int flags, const char* what) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno(what, path, errno);
  return fd;
}

// write() until every byte is out: write may be partial or interrupted by a signal.
void write_all(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void fsync_fd(int fd, const std::filesystem::path& path) {
  int rc;
  do {
    rc = ::fsync(fd);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throw_errno("cannot fsync", path, errno);
}

std::filesystem::path parent_or_cwd(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

}  // namespace

void fsync_directory(const std::filesystem::path& dir) {
  Fd fd(open_or_throw(dir, O_RDONLY | O_DIRECTORY, "cannot open directory"));
  int rc;
  do {
    rc = ::fsync(fd.get());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EINVAL && errno != ENOTSUP) throw_errno("cannot fsync directory", dir, errno);
  fd.close_checked(dir);
}

void fsync_file(const std::filesystem::path& path) {
  Fd fd(open_or_throw(path, O_RDONLY, "cannot open"));
  fsync_fd(fd.get(), path);
  fd.close_checked(path);
}

void rename_atomic(const std::filesystem::path& tmp, const std::filesystem::path& final_path) {
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    throw std::runtime_error("cannot rename '" + tmp.string() + "' to '" + final_path.string() +
                             "': " + std::strerror(errno));
  const auto final_dir = parent_or_cwd(final_path);
  const auto tmp_dir = parent_or_cwd(tmp);
  fsync_directory(final_dir);
  if (tmp_dir != final_dir) fsync_directory(tmp_dir);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content, std::string_view tmp_suffix) {
  std::filesystem::path tmp = path;
  tmp += std::string(tmp_suffix);
  try {
    Fd fd(open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC, "cannot create"));
    write_all(fd.get(), content, tmp);
    fsync_fd(fd.get(), tmp);
    fd.close_checked(tmp);
    rename_atomic(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());  // best effort: the error being reported is the one that matters
    throw;
  }
}

bool write_file_once(const std::filesystem::path& path, std::string_view content, std::string_view tmp_suffix) {
  std::filesystem::path tmp = path;
  tmp += std::string(tmp_suffix);
  bool created = false;
  try {
    Fd fd(open_or_throw(tmp, O_WRONLY | O_CREAT | O_TRUNC, "cannot create"));
    write_all(fd.get(), content, tmp);
    fsync_fd(fd.get(), tmp);
    fd.close_checked(tmp);
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      throw_errno("cannot link", path, errno);
    } else {
      // NFS may retry a link whose reply was lost and then report EEXIST for this very link: the
      // temporary file's link count tells (2: `path` is our file).
      struct stat st {};
      created = ::stat(tmp.c_str(), &st) == 0 && st.st_nlink == 2;
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  ::unlink(tmp.c_str());
  if (created) fsync_directory(parent_or_cwd(path));
  return created;
}

void append_line_durable(const std::filesystem::path& path, std::string_view line) {
  bool created = false;
  int raw = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (raw < 0 && errno == ENOENT) {
    raw = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    created = raw >= 0;
    if (raw < 0 && errno == EEXIST) raw = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  }
  if (raw < 0) throw_errno("cannot open for append", path, errno);
  Fd fd(raw);

  std::string buffer;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw_errno("cannot stat", path, errno);
  if (st.st_size > 0) {
    char last = '\n';
    const ssize_t n = ::pread(fd.get(), &last, 1, st.st_size - 1);
    if (n < 0) throw_errno("cannot read", path, errno);
    if (n == 1 && last != '\n') buffer += '\n';
  }
  buffer.append(line);
  buffer += '\n';
  write_all(fd.get(), buffer, path);
  fsync_fd(fd.get(), path);
  fd.close_checked(path);
  if (created) fsync_directory(parent_or_cwd(path));
}

}  // namespace expt::io
