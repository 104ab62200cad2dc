// Token corpora for the language-model tasks: runs of tokens inside memory-mapped files, grouped
// into a split (train or validation), and the two token-file formats people already have.
//
//   nanogpt  nanoGPT's prepare.py output: the whole file is little-endian uint16 tokens
//            (np.array(ids, dtype=np.uint16).tofile(path)); no header.
//   llmc     llm.c's shards (dev/data/data_common.py write_datafile, llmc/dataloader.h): a header
//            of 256 little-endian int32, then the tokens.
//              header[0] magic    20240520 (GPT-2 tokens, uint16) or 20240801 (LLaMA-3, uint32)
//              header[1] version  1 for magic 20240520, 7 for magic 20240801
//              header[2] number of tokens N; the file is exactly 1024 + N * width bytes
//
// A window of a split never crosses from one run into the next: runs are separate files, shards
// or split blocks, and joining their ends would invent text that is in neither.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/data/mapped_file.hpp"

namespace expt::data {

// `count` tokens of `width` bytes (1, 2 or 4; little-endian unsigned) from byte `offset` of `file`.
struct TokenRun {
  const MappedFile* file = nullptr;
  std::size_t offset = 0;
  std::size_t count = 0;
  int width = 1;
};

// Where a window came from: its file, the byte offset of its first token, the token width.
struct WindowSource {
  const std::filesystem::path* file = nullptr;
  std::size_t byte_offset = 0;
  int width = 1;
};

class TokenSplit {
 public:
  // Appends a run; a run that continues the previous one (same file, same width, adjacent bytes)
  // is merged into it, so windows may span the two.
  void add(const TokenRun& run);

  const std::vector<TokenRun>& runs() const { return runs_; }
  std::uint64_t tokens() const;
  // Number of windows of `window` consecutive tokens: sum over runs of max(0, count - window + 1).
  std::uint64_t window_count(std::uint64_t window) const;
  // Decodes window k (0 <= k < window_count(window), counted run by run, then by start token) into
  // out[0, window). Throws std::out_of_range for k outside that range.
  WindowSource read_window(std::uint64_t k, std::uint64_t window, std::int32_t* out) const;

 private:
  std::vector<TokenRun> runs_;
};

enum class TokenFileFormat { nanogpt, llmc };

// "nanogpt" or "llmc"; throws std::invalid_argument for anything else.
TokenFileFormat parse_token_file_format(const std::string& name);

inline constexpr std::int32_t kLlmcMagicGpt2 = 20240520;    // version 1, uint16 tokens
inline constexpr std::int32_t kLlmcMagicLlama3 = 20240801;  // version 7, uint32 tokens
inline constexpr std::size_t kLlmcHeaderBytes = 256 * 4;

// The tokens of a token file, after checking its layout. Throws std::runtime_error naming the file
// for a bad magic, a bad version, a negative token count, or a size that does not match (truncated
// or trailing bytes).
TokenRun token_file_run(const MappedFile& file, TokenFileFormat format);

// Checks that every token id of `run` is below vocab_size. Runs of up to full_scan_limit tokens
// are scanned completely. Longer runs are checked on full_scan_limit tokens in kCheckChunks
// contiguous chunks spread evenly over the run: chunk j starts at floor(j * count / kCheckChunks),
// so a check of a 10-billion-token corpus reads 32 MiB in 64 sequential pieces instead of touching
// every page. The batches check every token they read, so a bad id missed here still stops
// training at the first batch that holds it. Throws std::runtime_error with the file and the
// token's position.
inline constexpr std::size_t kFullScanTokens = std::size_t{1} << 24;
inline constexpr std::size_t kCheckChunks = 64;
void check_token_ids(const TokenRun& run, int vocab_size, std::size_t full_scan_limit = kFullScanTokens);

// The text of a token-id error: "<file>: token id X at token index I (byte B) is not below
// task.vocab_size V", I counted from the file's first token.
std::string token_id_error(const std::filesystem::path& file, std::size_t token_index, std::size_t byte_offset,
                           std::int64_t id, int vocab_size);

}  // namespace expt::data
