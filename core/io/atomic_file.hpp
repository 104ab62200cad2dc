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
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

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
