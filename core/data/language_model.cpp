#include "core/data/language_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "core/data/sampling.hpp"

namespace expt::data {

namespace {

constexpr std::uint64_t kGoldenFraction64 = 0x9E3779B97F4A7C15ull;  // 2^64 * (sqrt(5) - 1) / 2

std::string str(std::uint64_t v) { return std::to_string(v); }

// Runs f(), prefixing the message of a std::runtime_error with the config key it concerns.
template <class F>
void for_key(const std::string& key, F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(key + ": " + e.what());
  }
}

// Every file named by the patterns, in the order given (each pattern's matches sorted).
std::vector<std::filesystem::path> expand_all(const std::vector<std::string>& patterns, const std::string& key) {
  std::vector<std::filesystem::path> files;
  for_key(key, [&] {
    for (const std::string& p : patterns)
      for (auto& f : expand_pattern(p)) files.push_back(std::move(f));
  });
  return files;
}

// Block b goes to validation when floor((b + 1) * f) > floor(b * f), f = val_fraction.
bool validation_block(std::uint64_t b, double fraction) {
  return std::floor(static_cast<double>(b + 1) * fraction) > std::floor(static_cast<double>(b) * fraction);
}

}  // namespace

LanguageModelTask::LanguageModelTask(const config::TaskConfig& cfg) : name_(cfg.type), seq_len_(cfg.seq_len) {
  if (seq_len_ < 1) throw std::invalid_argument(name_ + ": seq_len must be >= 1");
  eval_lengths_.push_back(seq_len_);
  for (int length : cfg.eval_lengths) {
    if (length < 1) throw std::invalid_argument(name_ + ": eval lengths must be >= 1");
    if (std::find(eval_lengths_.begin(), eval_lengths_.end(), length) == eval_lengths_.end())
      eval_lengths_.push_back(length);
  }

  if (cfg.type == "text") {
    vocab_size_ = 256;
    if (cfg.paths.empty()) throw std::invalid_argument("text: task.paths names no file");
    if (cfg.split_block_bytes < 1) throw std::invalid_argument("text: task.split_block_bytes must be >= 1");
    if (!(cfg.val_fraction > 0 && cfg.val_fraction < 1))
      throw std::invalid_argument("text: task.val_fraction must be in (0, 1)");
    const auto block = static_cast<std::size_t>(cfg.split_block_bytes);
    std::uint64_t b = 0;
    for (const auto& path : expand_all(cfg.paths, "task.paths")) {
      for_key("task.paths", [&] { files_.push_back(std::make_unique<MappedFile>(path)); });
      const MappedFile& file = *files_.back();
      for (std::size_t offset = 0; offset < file.size(); offset += block, ++b) {
        const TokenRun run{&file, offset, std::min(block, file.size() - offset), 1};
        (validation_block(b, cfg.val_fraction) ? validation_ : train_).add(run);
      }
    }
  } else if (cfg.type == "tokens") {
    vocab_size_ = cfg.vocab_size;
    if (vocab_size_ < 1) throw std::invalid_argument("tokens: task.vocab_size must be >= 1");
    const TokenFileFormat format = parse_token_file_format(cfg.format);
    header_bytes_ = format == TokenFileFormat::llmc ? kLlmcHeaderBytes : 0;
    for (const auto& [pattern, key, split] : {std::tuple{cfg.train_path, "task.train_path", &train_},
                                              std::tuple{cfg.val_path, "task.val_path", &validation_}}) {
      if (pattern.empty()) throw std::invalid_argument(std::string("tokens: ") + key + " is not set");
      for (const auto& path : expand_all({pattern}, key)) {
        for_key(key, [&] {
          files_.push_back(std::make_unique<MappedFile>(path));
          const TokenRun run = token_file_run(*files_.back(), format);
          check_token_ids(run, vocab_size_);
          split->add(run);
        });
      }
    }
  } else {
    throw std::invalid_argument("language model task: unknown type '" + cfg.type + "' (text or tokens)");
  }

  const std::string hint = name_ == "text" ? " (a smaller task.split_block_bytes or more text helps)" : "";
  train_windows_ = train_.window_count(static_cast<std::uint64_t>(seq_len_) + 1);
  if (train_windows_ == 0)
    throw std::runtime_error(name_ + ": the train split (" + str(train_.tokens()) +
                             " tokens) has no run of seq_len + 1 = " + str(static_cast<std::uint64_t>(seq_len_) + 1) +
                             " tokens" + hint);
  for (int length : eval_lengths_)
    if (validation_.window_count(static_cast<std::uint64_t>(length) + 1) == 0)
      throw std::runtime_error(
          name_ + ": the validation split (" + str(validation_.tokens()) +
          " tokens) has no run of eval length + 1 = " + str(static_cast<std::uint64_t>(length) + 1) + " tokens" + hint);
}

void LanguageModelTask::fill_row(const TokenSplit& split, std::uint64_t k, int row, Batch& out) const {
  const int T = out.length;
  std::vector<std::int32_t> window(static_cast<std::size_t>(T) + 1);
  const WindowSource source = split.read_window(k, window.size(), window.data());
  // Only token files can hold an id outside the vocabulary; every id read is checked.
  for (std::size_t t = 0; t < window.size(); ++t) {
    if (window[t] < vocab_size_) continue;
    const std::size_t byte = source.byte_offset + t * static_cast<std::size_t>(source.width);
    throw std::runtime_error(
        token_id_error(*source.file, (byte - header_bytes_) / source.width, byte, window[t], vocab_size_));
  }
  const std::size_t base = static_cast<std::size_t>(row) * T;
  std::copy(window.begin(), window.end() - 1, out.inputs.begin() + static_cast<std::ptrdiff_t>(base));
  std::copy(window.begin() + 1, window.end(), out.targets.begin() + static_cast<std::ptrdiff_t>(base));
}

void LanguageModelTask::train_batch(std::uint64_t seed, std::int64_t step, int first, int count, Batch& out) const {
  if (step < 0 || first < 0 || count < 0)
    throw std::invalid_argument(name_ + ": train_batch needs step, first, count >= 0");
  out.resize(count, seq_len_);
  for (int j = 0; j < count; ++j) {
    const std::uint64_t u = bits64(seed, rng::Stream::train_data, static_cast<std::uint64_t>(step),
                                   static_cast<std::uint64_t>(first) + j, 0);
    fill_row(train_, scale_to(u, train_windows_), j, out);
  }
}

void LanguageModelTask::eval_batch(std::uint64_t, int length, int index, int count, Batch& out) const {
  if (length < 1 || index < 0 || count < 0)
    throw std::invalid_argument(name_ + ": eval_batch needs length >= 1, index >= 0, count >= 0");
  const std::uint64_t windows = validation_.window_count(static_cast<std::uint64_t>(length) + 1);
  if (windows == 0)
    throw std::invalid_argument(name_ + ": the validation split has no window of " + std::to_string(length + 1) +
                                " tokens");
  out.resize(count, length);
  for (int j = 0; j < count; ++j) {
    const std::uint64_t n = static_cast<std::uint64_t>(index) * static_cast<std::uint64_t>(count) + j;
    fill_row(validation_, scale_to(n * kGoldenFraction64, windows), j, out);
  }
}

}  // namespace expt::data
