// Durable file operations for the results tree (docs/results-format.md "Crash-consistency rules").
//
// Anything analysis may read is replaced whole: written to "<name>.tmp", fsynced, renamed over
// "<name>", and the directory fsynced, so a reader (or a crash) sees the old file or the new one,
// never a mix. Append-only logs (attempts.jsonl, log.txt) get one write() per line followed by
// fsync. Every failure throws std::runtime_error naming the path and strerror(errno).
#pragma once

#include <filesystem>
#include <string_view>

namespace expt::io {

// Writes `content` to path + ".tmp", fsyncs it, renames it over `path` and fsyncs the directory.
// On failure the temporary file is removed and the previous `path` (if any) is left untouched.
// Files that several processes rewrite (status.json of a directory shared by `expt worker`s) need
// a temporary name of their own: `tmp_suffix` (".tmp.<worker id>").
void write_file_atomic(const std::filesystem::path& path, std::string_view content,
                       std::string_view tmp_suffix = ".tmp");

// Creates `path` with `content` only when it does not exist (written to path + tmp_suffix,
// fsynced, then link(2), which never replaces a name, on local disks and NFS alike): returns false
// and leaves the existing file alone when another process created it first. `tmp_suffix` must be
// unique to the caller (".tmp.<worker id>"): racing callers must not share a temporary file.
bool write_file_once(const std::filesystem::path& path, std::string_view content, std::string_view tmp_suffix);

// fsync of a directory, which makes the names created/renamed/removed in it durable. Filesystems
// that cannot fsync a directory (EINVAL/ENOTSUP) are accepted: durability is then theirs to give.
void fsync_directory(const std::filesystem::path& dir);

// fsync of an existing regular file (e.g. an HDF5 file after H5Fclose, before it is renamed).
void fsync_file(const std::filesystem::path& path);

// rename(tmp, final) then fsync of final's directory (and tmp's, when it is another directory).
void rename_atomic(const std::filesystem::path& tmp, const std::filesystem::path& final_path);

// Appends `line` and a '\n' with one write() and fsyncs the file; creates the file (and fsyncs its
// directory) when missing. If the file does not end with '\n' (a line torn by a crash), a '\n' is
// written first so that the new line starts on a line of its own.
void append_line_durable(const std::filesystem::path& path, std::string_view line);

}  // namespace expt::io
