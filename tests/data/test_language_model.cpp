// Language-model tasks on files written here: windows are next-token pairs cut from the right
// split, the text split follows the block rule, training windows cover every start position, the
// two token-file formats decode, and bad files fail with clear errors.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/data/language_model.hpp"
#include "core/data/token_corpus.hpp"
#include "tests/data/data_test_util.hpp"

using expt::data::Batch;
using expt::data::LanguageModelTask;
using expt::data::test::put_le;
using expt::data::test::ScratchDir;
using expt::data::test::write_bytes;

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(gen());
  return b;
}

expt::config::TaskConfig text_cfg(std::vector<std::string> paths, int seq_len, double val_fraction, int block,
                                  std::vector<int> eval = {}) {
  expt::config::TaskConfig cfg;
  cfg.type = "text";
  cfg.paths = std::move(paths);
  cfg.seq_len = seq_len;
  cfg.val_fraction = val_fraction;
  cfg.split_block_bytes = block;
  cfg.eval_lengths = std::move(eval);
  return cfg;
}

expt::config::TaskConfig tokens_cfg(const std::string& train, const std::string& val, const std::string& format,
                                    int vocab, int seq_len, std::vector<int> eval = {}) {
  expt::config::TaskConfig cfg;
  cfg.type = "tokens";
  cfg.train_path = train;
  cfg.val_path = val;
  cfg.format = format;
  cfg.vocab_size = vocab;
  cfg.seq_len = seq_len;
  cfg.eval_lengths = std::move(eval);
  return cfg;
}

// An llm.c shard: header (magic, version, count, zeros) then the tokens.
std::vector<std::uint8_t> llmc_shard(const std::vector<std::uint32_t>& tokens, std::int32_t magic, std::int32_t version,
                                     int width) {
  std::vector<std::uint8_t> bytes;
  put_le(bytes, static_cast<std::uint32_t>(magic), 4);
  put_le(bytes, static_cast<std::uint32_t>(version), 4);
  put_le(bytes, static_cast<std::uint32_t>(tokens.size()), 4);
  for (int i = 3; i < 256; ++i) put_le(bytes, 0, 4);
  for (std::uint32_t t : tokens) put_le(bytes, t, width);
  return bytes;
}

std::vector<std::uint8_t> nanogpt_file(const std::vector<std::uint32_t>& tokens) {
  std::vector<std::uint8_t> bytes;
  for (std::uint32_t t : tokens) put_le(bytes, t, 2);
  return bytes;
}

std::vector<std::uint32_t> iota_tokens(std::uint32_t first, std::size_t n) {
  std::vector<std::uint32_t> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = first + static_cast<std::uint32_t>(i);
  return t;
}

// Each row of an LM batch: targets are the inputs shifted by one position.
void check_shifted(const Batch& b) {
  for (int i = 0; i < b.batch; ++i)
    for (int t = 0; t + 1 < b.length; ++t)
      REQUIRE(b.targets[static_cast<std::size_t>(i) * b.length + t] ==
              b.inputs[static_cast<std::size_t>(i) * b.length + t + 1]);
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("text: windows come from the split's blocks, within one file", "[text]") {
  ScratchDir dir;
  // Three files of random bytes; blocks of 100 bytes numbered across files; val_fraction 0.25 puts
  // blocks 3, 7, 11, ... in validation.
  const std::vector<std::size_t> sizes = {1050, 333, 1617};
  std::vector<std::vector<std::uint8_t>> contents;
  std::vector<std::string> paths;
  for (std::size_t f = 0; f < sizes.size(); ++f) {
    contents.push_back(random_bytes(sizes[f], 100 + static_cast<unsigned>(f)));
    paths.push_back((dir / ("part" + std::to_string(f) + ".txt")).string());
    write_bytes(paths.back(), contents.back());
  }
  const int T = 24, block = 100;
  const LanguageModelTask task(text_cfg(paths, T, 0.25, block, {40}));
  CHECK(task.vocab_size() == 256);
  CHECK(task.eval_lengths() == std::vector<int>{T, 40});

  // Split of every byte by the rule, computed here: (file, offset) -> validation?
  std::vector<std::vector<bool>> is_val(sizes.size());
  std::uint64_t b = 0, val_bytes = 0, train_bytes = 0;
  for (std::size_t f = 0; f < sizes.size(); ++f) {
    is_val[f].resize(sizes[f]);
    for (std::size_t off = 0; off < sizes[f]; off += block, ++b) {
      const bool v = b % 4 == 3;
      for (std::size_t k = off; k < std::min(sizes[f], off + block); ++k) is_val[f][k] = v;
      (v ? val_bytes : train_bytes) += std::min<std::size_t>(block, sizes[f] - off);
    }
  }
  CHECK(task.train_split().tokens() == train_bytes);
  CHECK(task.validation_split().tokens() == val_bytes);

  // Locates the window (inputs, then the last target) in the files: it must occur inside one file,
  // entirely in blocks of the expected split.
  const auto check_window = [&](const Batch& batch, int i, bool validation) {
    const int L = batch.length;
    std::vector<std::uint8_t> w(static_cast<std::size_t>(L) + 1);
    for (int t = 0; t < L; ++t) w[t] = static_cast<std::uint8_t>(batch.inputs[static_cast<std::size_t>(i) * L + t]);
    w[L] = static_cast<std::uint8_t>(batch.targets[static_cast<std::size_t>(i) * L + L - 1]);
    int found = 0;
    for (std::size_t f = 0; f < contents.size(); ++f) {
      for (auto it = contents[f].begin();
           (it = std::search(it, contents[f].end(), w.begin(), w.end())) != contents[f].end(); ++it) {
        ++found;
        const auto off = static_cast<std::size_t>(it - contents[f].begin());
        for (std::size_t k = off; k < off + w.size(); ++k) REQUIRE(is_val[f][k] == validation);
      }
    }
    REQUIRE(found == 1);
  };
  Batch batch;
  for (std::int64_t step = 1; step <= 5; ++step) {
    task.train_batch(42, step, 0, 16, batch);
    REQUIRE(batch.length == T);
    check_shifted(batch);
    for (int i = 0; i < batch.batch; ++i) check_window(batch, i, false);
  }
  for (int L : {T, 40}) {
    task.eval_batch(42, L, 0, 12, batch);
    REQUIRE(batch.length == L);
    check_shifted(batch);
    for (int i = 0; i < batch.batch; ++i) check_window(batch, i, true);
  }
}

TEST_CASE("text: training windows cover every start position uniformly", "[text]") {
  ScratchDir dir;
  // One file of 1000 bytes, one block of validation at the end: blocks of 250, val_fraction 0.25
  // (block 3 = bytes 750..999). Train starts: 0..750 - (T + 1), each equally likely.
  auto content = random_bytes(1000, 7);
  write_bytes(dir / "a.txt", content);
  const int T = 9;
  const LanguageModelTask task(text_cfg({(dir / "a.txt").string()}, T, 0.25, 250));
  const std::size_t starts = 750 - T;
  REQUIRE(task.train_split().window_count(T + 1) == starts);
  std::vector<int> hits(starts, 0);
  Batch batch;
  const int per_step = 1000, steps = 30;
  for (int s = 1; s <= steps; ++s) {
    task.train_batch(1, s, 0, per_step, batch);
    for (int i = 0; i < batch.batch; ++i) {
      // The first 8 inputs identify the start (random bytes): search the train part.
      const auto* in = batch.inputs.data() + static_cast<std::size_t>(i) * T;
      std::vector<std::uint8_t> w(in, in + T);
      const auto it = std::search(content.begin(), content.begin() + 750, w.begin(), w.end());
      REQUIRE(it != content.begin() + 750);
      ++hits[static_cast<std::size_t>(it - content.begin())];
    }
  }
  const double expected = static_cast<double>(per_step) * steps / starts;
  int lo = hits[0], hi = hits[0];
  for (int h : hits) {
    lo = std::min(lo, h);
    hi = std::max(hi, h);
  }
  INFO("expected " << expected << " per start, min " << lo << " max " << hi);
  CHECK(lo > 0);                                   // the first and last starts included
  CHECK(lo > expected - 6 * std::sqrt(expected));  // no start starved
  CHECK(hi < expected + 6 * std::sqrt(expected));  // none favoured
}

TEST_CASE("text: eval windows are fixed and spread over the validation split", "[text]") {
  ScratchDir dir;
  write_bytes(dir / "a.txt", random_bytes(20000, 9));
  const LanguageModelTask task(text_cfg({(dir / "a.txt").string()}, 16, 0.5, 10000));
  Batch a, b;
  task.eval_batch(1, 16, 0, 64, a);
  task.eval_batch(2, 16, 0, 64, b);  // the validation set does not depend on the seed
  CHECK(a.inputs == b.inputs);
  // 64 windows of 17 bytes out of 9984 starts: all distinct.
  std::set<std::vector<std::int32_t>> distinct;
  for (int i = 0; i < a.batch; ++i) distinct.insert(expt::data::test::row(a, i));
  CHECK(distinct.size() == 64);
}

TEST_CASE("text: glob patterns, missing files and too-small splits", "[text]") {
  ScratchDir dir;
  write_bytes(dir / "b.txt", random_bytes(3000, 1));
  write_bytes(dir / "a.txt", random_bytes(3000, 2));
  const LanguageModelTask globbed(text_cfg({(dir / "*.txt").string()}, 8, 0.5, 1000));
  const LanguageModelTask listed(text_cfg({(dir / "a.txt").string(), (dir / "b.txt").string()}, 8, 0.5, 1000));
  Batch x, y;
  globbed.train_batch(3, 1, 0, 32, x);
  listed.train_batch(3, 1, 0, 32, y);
  CHECK(x.inputs == y.inputs);  // the pattern's matches in sorted order

  const std::string missing = (dir / "nope.txt").string();
  CHECK_THAT(message_of([&] { LanguageModelTask t(text_cfg({missing}, 8, 0.5, 1000)); }),
             Catch::Contains(missing) && Catch::Contains("No such file"));
  CHECK_THAT(message_of([&] { LanguageModelTask t(text_cfg({(dir / "*.md").string()}, 8, 0.5, 1000)); }),
             Catch::Contains("task.paths") && Catch::Contains("no file matches"));
  // One block per file at 64 KiB: only block 1 (b.txt) goes to validation with f = 0.5; seq_len
  // 4000 does not fit in a 3000-byte train split.
  CHECK_THAT(message_of([&] { LanguageModelTask t(text_cfg({(dir / "*.txt").string()}, 4000, 0.5, 65536)); }),
             Catch::Contains("train split"));
  CHECK_THAT(message_of([&] { LanguageModelTask t(text_cfg({(dir / "a.txt").string()}, 8, 0.1, 65536)); }),
             Catch::Contains("validation split"));
}

TEST_CASE("tokens: nanoGPT and llm.c files decode to next-token windows", "[tokens]") {
  ScratchDir dir;
  // Token i of the train file is 1000 + i, of the validation file 40000 + i: the inputs of a
  // window give its start, and every position is checked against it.
  const auto train_tokens = iota_tokens(1000, 3000), val_tokens = iota_tokens(40000, 700);
  write_bytes(dir / "train.bin", nanogpt_file(train_tokens));
  write_bytes(dir / "val.bin", nanogpt_file(val_tokens));
  write_bytes(dir / "train_000.bin", llmc_shard(iota_tokens(1000, 1500), expt::data::kLlmcMagicGpt2, 1, 2));
  write_bytes(dir / "train_001.bin", llmc_shard(iota_tokens(2500, 1500), expt::data::kLlmcMagicGpt2, 1, 2));
  write_bytes(dir / "val_000.bin", llmc_shard(val_tokens, expt::data::kLlmcMagicGpt2, 1, 2));
  write_bytes(dir / "l3_train.bin", llmc_shard(iota_tokens(100000, 3000), expt::data::kLlmcMagicLlama3, 7, 4));
  write_bytes(dir / "l3_val.bin", llmc_shard(iota_tokens(120000, 700), expt::data::kLlmcMagicLlama3, 7, 4));

  struct Case {
    std::string train, val, format;
    int vocab;
    std::uint32_t train_first, val_first;
    std::uint64_t train_windows;
  };
  const int T = 32;
  for (const Case& c : {Case{"train.bin", "val.bin", "nanogpt", 50304, 1000, 40000, 3000 - T},
                        Case{"train_*.bin", "val_*.bin", "llmc", 50257, 1000, 40000, 2 * (1500 - T)},
                        Case{"l3_train.bin", "l3_val.bin", "llmc", 128256, 100000, 120000, 3000 - T}}) {
    INFO(c.train << " " << c.format);
    const LanguageModelTask task(
        tokens_cfg((dir / c.train).string(), (dir / c.val).string(), c.format, c.vocab, T, {64}));
    CHECK(task.vocab_size() == c.vocab);
    CHECK(task.train_split().tokens() == 3000);
    CHECK(task.train_split().window_count(T + 1) == c.train_windows);  // shards are separate runs
    Batch b;
    task.train_batch(5, 9, 0, 64, b);
    for (int i = 0; i < b.batch; ++i) {
      const std::int64_t start = b.inputs[static_cast<std::size_t>(i) * T];
      REQUIRE(start >= c.train_first);
      REQUIRE(start + T + 1 <= c.train_first + 3000);
      // llm.c shards: a window never crosses from the first shard into the second.
      if (c.format == "llmc" && c.train_first == 1000) REQUIRE((start + T < 2500 || start >= 2500));
      for (int t = 0; t < T; ++t) {
        REQUIRE(b.inputs[static_cast<std::size_t>(i) * T + t] == start + t);
        REQUIRE(b.targets[static_cast<std::size_t>(i) * T + t] == start + t + 1);
      }
    }
    task.eval_batch(5, 64, 2, 8, b);
    for (int i = 0; i < b.batch; ++i) {
      const std::int64_t start = b.inputs[static_cast<std::size_t>(i) * 64];
      REQUIRE(start >= c.val_first);
      REQUIRE(start + 65 <= c.val_first + 700);
      for (int t = 0; t < 64; ++t) REQUIRE(b.targets[static_cast<std::size_t>(i) * 64 + t] == start + t + 1);
    }
  }
}

TEST_CASE("tokens: llm.c header validation and token ids give clear errors", "[tokens]") {
  ScratchDir dir;
  const auto tokens = iota_tokens(0, 600);
  write_bytes(dir / "val.bin", llmc_shard(tokens, expt::data::kLlmcMagicGpt2, 1, 2));
  const auto load = [&](const std::vector<std::uint8_t>& train_bytes, const std::string& format, int vocab = 50257) {
    write_bytes(dir / "train.bin", train_bytes);
    return message_of([&] {
      LanguageModelTask t(tokens_cfg((dir / "train.bin").string(), (dir / "val.bin").string(), format, vocab, 16));
    });
  };
  const std::string train = (dir / "train.bin").string();
  CHECK(load(llmc_shard(tokens, expt::data::kLlmcMagicGpt2, 1, 2), "llmc") == "(no exception)");

  CHECK_THAT(load(llmc_shard(tokens, 12345, 1, 2), "llmc"),
             Catch::Contains(train) && Catch::Contains("bad magic 12345"));
  CHECK_THAT(load(llmc_shard(tokens, expt::data::kLlmcMagicGpt2, 2, 2), "llmc"),
             Catch::Contains(train) && Catch::Contains("bad version 2"));
  auto truncated = llmc_shard(tokens, expt::data::kLlmcMagicGpt2, 1, 2);
  truncated.erase(truncated.end() - 3, truncated.end());  // drop the last 3 bytes
  CHECK_THAT(load(truncated, "llmc"),
             Catch::Contains(train) && Catch::Contains("truncated") && Catch::Contains("600 tokens"));
  auto trailing = llmc_shard(tokens, expt::data::kLlmcMagicGpt2, 1, 2);
  trailing.push_back(0);
  CHECK_THAT(load(trailing, "llmc"), Catch::Contains("trailing bytes"));
  CHECK_THAT(load(std::vector<std::uint8_t>(100, 0), "llmc"), Catch::Contains("shorter than the 1024-byte"));
  // nanoGPT: an odd number of bytes cannot be uint16 tokens.
  auto odd = nanogpt_file(tokens);
  odd.pop_back();
  CHECK_THAT(load(odd, "nanogpt"), Catch::Contains(train) && Catch::Contains("whole number of uint16"));
  // A token id >= vocab_size, found on load with its position.
  auto bad = tokens;
  bad[123] = 50257;
  CHECK_THAT(load(llmc_shard(bad, expt::data::kLlmcMagicGpt2, 1, 2), "llmc"),
             Catch::Contains(train) && Catch::Contains("token id 50257 at token index 123") &&
                 Catch::Contains("task.vocab_size 50257"));
  CHECK_THAT(load(nanogpt_file(tokens), "nanogpt", 500), Catch::Contains("token id 500 at token index 500"));
}

TEST_CASE("tokens: check_token_ids samples long runs, and batches check every token they read", "[tokens]") {
  ScratchDir dir;
  // Sampled mode: 8 samples of a 64-token run read tokens 0, 8, 16, ...; a bad id at 13 passes,
  // at 16 it is found.
  auto tokens = iota_tokens(0, 64);
  tokens[13] = 999;
  write_bytes(dir / "a.bin", nanogpt_file(tokens));
  const expt::data::MappedFile file(dir / "a.bin");
  const auto run = expt::data::token_file_run(file, expt::data::TokenFileFormat::nanogpt);
  CHECK_NOTHROW(expt::data::check_token_ids(run, 100, 8));
  CHECK_THROWS_WITH(expt::data::check_token_ids(run, 100, 64), Catch::Contains("token index 13"));
  tokens[16] = 999;
  write_bytes(dir / "b.bin", nanogpt_file(tokens));
  const expt::data::MappedFile file_b(dir / "b.bin");
  CHECK_THROWS_WITH(
      expt::data::check_token_ids(expt::data::token_file_run(file_b, expt::data::TokenFileFormat::nanogpt), 100, 8),
      Catch::Contains("token index 16"));

  // A train file longer than the full-scan limit: 2^25 tokens (64 MiB, sparse: zero tokens) is
  // checked on load in 64 chunks of 2^18 tokens at multiples of 2^19, so the bad ids written into
  // [2^18, 2^19) pass the load check; 4096 random training windows (each hits that 1/128 of the
  // file with probability ~1/128) find them.
  const auto big = dir / "big_train.bin";
  {
    const std::size_t first_bad = std::size_t{1} << 18, bad_count = std::size_t{1} << 18;
    std::vector<std::uint8_t> bytes(2 * first_bad, 0);
    for (std::size_t i = 0; i < bad_count; ++i) put_le(bytes, 60000, 2);
    write_bytes(big, bytes);
    std::filesystem::resize_file(big, std::uintmax_t{2} << 25);
  }
  write_bytes(dir / "val.bin", nanogpt_file(iota_tokens(0, 100)));
  const LanguageModelTask task(tokens_cfg(big.string(), (dir / "val.bin").string(), "nanogpt", 50000, 16));
  Batch b;
  CHECK_THROWS_WITH(task.train_batch(0, 1, 0, 4096, b),
                    Catch::Contains(big.string()) && Catch::Contains("token id 60000 at token index"));
}
