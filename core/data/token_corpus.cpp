#include "core/data/token_corpus.hpp"

#include <algorithm>
#include <stdexcept>

namespace expt::data {

namespace {

// Little-endian unsigned token of `width` bytes at p (decoded byte by byte: the files are
// little-endian whatever the host).
std::uint32_t load_token(const std::byte* p, int width) {
  std::uint32_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<std::uint32_t>(p[i]);
  return v;
}

std::int32_t load_int32(const std::byte* p) { return static_cast<std::int32_t>(load_token(p, 4)); }

std::string str(std::int64_t v) { return std::to_string(v); }

}  // namespace

void TokenSplit::add(const TokenRun& run) {
  if (run.count == 0) return;
  if (!runs_.empty()) {
    TokenRun& last = runs_.back();
    if (last.file == run.file && last.width == run.width &&
        last.offset + last.count * static_cast<std::size_t>(last.width) == run.offset) {
      last.count += run.count;
      return;
    }
  }
  runs_.push_back(run);
}

std::uint64_t TokenSplit::tokens() const {
  std::uint64_t n = 0;
  for (const TokenRun& r : runs_) n += r.count;
  return n;
}

std::uint64_t TokenSplit::window_count(std::uint64_t window) const {
  std::uint64_t n = 0;
  for (const TokenRun& r : runs_)
    if (r.count >= window) n += r.count - window + 1;
  return n;
}

WindowSource TokenSplit::read_window(std::uint64_t k, std::uint64_t window, std::int32_t* out) const {
  for (const TokenRun& r : runs_) {
    const std::uint64_t starts = r.count >= window ? r.count - window + 1 : 0;
    if (k >= starts) {
      k -= starts;
      continue;
    }
    const std::size_t first = r.offset + static_cast<std::size_t>(k) * r.width;
    const std::byte* p = r.file->bytes().data() + first;
    for (std::uint64_t t = 0; t < window; ++t) out[t] = static_cast<std::int32_t>(load_token(p + t * r.width, r.width));
    return {&r.file->path(), first, r.width};
  }
  throw std::out_of_range("window index beyond the split's windows of " + str(static_cast<std::int64_t>(window)) +
                          " tokens");
}

TokenFileFormat parse_token_file_format(const std::string& name) {
  if (name == "nanogpt") return TokenFileFormat::nanogpt;
  if (name == "llmc") return TokenFileFormat::llmc;
  throw std::invalid_argument("unknown token file format '" + name + "' (known: nanogpt, llmc)");
}

TokenRun token_file_run(const MappedFile& file, TokenFileFormat format) {
  const std::string name = file.path().string();
  const std::size_t size = file.size();
  if (format == TokenFileFormat::nanogpt) {
    if (size % 2 != 0)
      throw std::runtime_error(name + ": " + str(static_cast<std::int64_t>(size)) +
                               " bytes is not a whole number of uint16 tokens (truncated file?); format nanogpt is "
                               "raw little-endian uint16");
    return {&file, 0, size / 2, 2};
  }
  if (size < kLlmcHeaderBytes)
    throw std::runtime_error(name + ": truncated: " + str(static_cast<std::int64_t>(size)) +
                             " bytes, shorter than the 1024-byte llm.c header");
  const std::byte* header = file.bytes().data();
  const std::int32_t magic = load_int32(header);
  const std::int32_t version = load_int32(header + 4);
  const std::int32_t count = load_int32(header + 8);
  int width = 0;
  std::int32_t expected_version = 0;
  if (magic == kLlmcMagicGpt2) {
    width = 2;
    expected_version = 1;
  } else if (magic == kLlmcMagicLlama3) {
    width = 4;
    expected_version = 7;
  } else {
    throw std::runtime_error(name + ": bad magic " + str(magic) + " in the llm.c header (expected " +
                             str(kLlmcMagicGpt2) + " for uint16 tokens or " + str(kLlmcMagicLlama3) +
                             " for uint32 tokens); is it an llm.c shard? (format nanogpt reads raw uint16 files)");
  }
  if (version != expected_version)
    throw std::runtime_error(name + ": bad version " + str(version) + " in the llm.c header (magic " + str(magic) +
                             " has version " + str(expected_version) + ")");
  if (count < 0) throw std::runtime_error(name + ": the llm.c header gives a negative token count " + str(count));
  const std::size_t expected = kLlmcHeaderBytes + static_cast<std::size_t>(count) * width;
  if (size != expected)
    throw std::runtime_error(name + ": " + (size < expected ? "truncated" : "trailing bytes") + ": the header says " +
                             str(count) + " tokens of " + str(width) + " bytes (" +
                             str(static_cast<std::int64_t>(expected)) + " bytes with the header) but the file has " +
                             str(static_cast<std::int64_t>(size)) + " bytes");
  return {&file, kLlmcHeaderBytes, static_cast<std::size_t>(count), width};
}

std::string token_id_error(const std::filesystem::path& file, std::size_t token_index, std::size_t byte_offset,
                           std::int64_t id, int vocab_size) {
  return file.string() + ": token id " + str(id) + " at token index " + str(static_cast<std::int64_t>(token_index)) +
         " (byte " + str(static_cast<std::int64_t>(byte_offset)) + ") is not below task.vocab_size " + str(vocab_size);
}

void check_token_ids(const TokenRun& run, int vocab_size, std::size_t full_scan_limit) {
  const std::byte* base = run.file->bytes().data() + run.offset;
  const auto check = [&](std::size_t i) {
    const std::uint32_t id = load_token(base + i * run.width, run.width);
    if (id >= static_cast<std::uint32_t>(vocab_size))
      throw std::runtime_error(
          token_id_error(run.file->path(), i, run.offset + i * run.width, static_cast<std::int64_t>(id), vocab_size));
  };
  if (full_scan_limit == 0) throw std::invalid_argument("check_token_ids: full_scan_limit must be >= 1");
  if (run.count <= full_scan_limit) {
    for (std::size_t i = 0; i < run.count; ++i) check(i);
    return;
  }
  // Chunk j covers [floor(j * count / chunks), + length); count > full_scan_limit >= chunks * length
  // keeps the chunks apart. floor(j * count / chunks) is j * q + floor(j * r / chunks) with
  // count = q * chunks + r, so that no product overflows 64 bits.
  const std::size_t chunks = std::min(kCheckChunks, full_scan_limit), length = full_scan_limit / chunks;
  const std::size_t q = run.count / chunks, r = run.count % chunks;
  for (std::size_t j = 0; j < chunks; ++j) {
    const std::size_t start = j * q + j * r / chunks;
    for (std::size_t i = start; i < start + length; ++i) check(i);
  }
}

}  // namespace expt::data
