// Every task through the registry: a step's global batch is the same whether built whole or as 2
// or 4 shards (the trainer's split: rank r of R takes sequences [r*B/R, (r+1)*B/R)), the eval set is
// the same for any rank count, and a fresh task (a resumed run) rebuilds any step without having
// built the ones before.
#include <catch2/catch.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/data/task.hpp"
#include "tests/data/data_test_util.hpp"

using expt::data::Batch;
using expt::data::make_task;
using expt::data::test::ScratchDir;

namespace {

// One config per task type (and per variant that draws differently).
std::vector<expt::config::TaskConfig> every_task(const ScratchDir& dir) {
  std::vector<expt::config::TaskConfig> out;
  expt::config::TaskConfig c;
  c.type = "word_problem";
  c.group = "S4";
  c.seq_len = 12;
  c.eval_lengths = {24};
  out.push_back(c);

  c = {};
  c.type = "mqar";
  c.vocab_size = 256;
  c.seq_len = 32;
  c.num_kv_pairs = 4;
  c.eval_lengths = {64};
  out.push_back(c);
  c.random_non_queries = true;
  out.push_back(c);

  c = {};
  c.type = "parity";
  c.min_len = 3;
  c.seq_len = 20;
  c.eval_lengths = {40};
  out.push_back(c);
  c.type = "mod_arith";
  c.modulus = 7;
  out.push_back(c);

  std::vector<std::uint8_t> text;
  for (int i = 0; i < 5000; ++i) text.push_back(static_cast<std::uint8_t>((i * 7919) % 251));
  expt::data::test::write_bytes(dir / "corpus.txt", text);
  c = {};
  c.type = "text";
  c.paths = {(dir / "corpus.txt").string()};
  c.split_block_bytes = 500;
  c.seq_len = 16;
  c.eval_lengths = {32};
  out.push_back(c);

  std::vector<std::uint8_t> tokens;
  for (int i = 0; i < 4000; ++i) expt::data::test::put_le(tokens, static_cast<std::uint64_t>(i * 13 % 1000), 2);
  expt::data::test::write_bytes(dir / "tokens.bin", tokens);
  c = {};
  c.type = "tokens";
  c.format = "nanogpt";
  c.train_path = c.val_path = (dir / "tokens.bin").string();
  c.vocab_size = 1000;
  c.seq_len = 16;
  c.eval_lengths = {32};
  out.push_back(c);
  return out;
}

// Sequences [0, B) of a step built as `shards` pieces, concatenated in rank order.
Batch sharded_train(const expt::data::Task& task, std::uint64_t seed, std::int64_t step, int B, int shards) {
  Batch whole, piece;
  for (int r = 0; r < shards; ++r) {
    task.train_batch(seed, step, r * (B / shards), B / shards, piece);
    whole.batch += piece.batch;
    whole.length = piece.length;
    whole.inputs.insert(whole.inputs.end(), piece.inputs.begin(), piece.inputs.end());
    whole.targets.insert(whole.targets.end(), piece.targets.begin(), piece.targets.end());
  }
  return whole;
}

// Eval batch `bi` of B sequences as the trainer builds it on `ranks` ranks: rank r asks for batch
// index bi * ranks + r of B / ranks sequences.
Batch sharded_eval(const expt::data::Task& task, std::uint64_t seed, int length, int bi, int B, int ranks) {
  Batch whole, piece;
  for (int r = 0; r < ranks; ++r) {
    task.eval_batch(seed, length, bi * ranks + r, B / ranks, piece);
    whole.batch += piece.batch;
    whole.length = piece.length;
    whole.inputs.insert(whole.inputs.end(), piece.inputs.begin(), piece.inputs.end());
    whole.targets.insert(whole.targets.end(), piece.targets.begin(), piece.targets.end());
  }
  return whole;
}

}  // namespace

TEST_CASE("batches are identical for 1, 2 and 4 shards", "[batches]") {
  ScratchDir dir;
  for (const auto& cfg : every_task(dir)) {
    INFO(cfg.type << (cfg.random_non_queries ? " (random fill)" : ""));
    const auto task = make_task(cfg);
    CHECK(task->name() == cfg.type);
    const int B = 8;
    for (const std::int64_t step : {1, 2, 57}) {
      const Batch one = sharded_train(*task, 17, step, B, 1);
      REQUIRE(one.batch == B);
      REQUIRE(one.length == task->train_length());
      for (const int shards : {2, 4}) {
        const Batch many = sharded_train(*task, 17, step, B, shards);
        CHECK(many.inputs == one.inputs);
        CHECK(many.targets == one.targets);
      }
    }
    for (const int L : task->eval_lengths()) {
      for (const int bi : {0, 3}) {
        const Batch one = sharded_eval(*task, 17, L, bi, B, 1);
        REQUIRE(one.length == L);
        for (const int ranks : {2, 4}) {
          const Batch many = sharded_eval(*task, 17, L, bi, B, ranks);
          CHECK(many.inputs == one.inputs);
          CHECK(many.targets == one.targets);
        }
      }
    }
  }
}

TEST_CASE("a resumed run rebuilds every step exactly, and steps, seeds and splits differ", "[batches]") {
  ScratchDir dir;
  for (const auto& cfg : every_task(dir)) {
    INFO(cfg.type);
    const int B = 6;
    // The run that trains steps 1..12 in order.
    const auto first_run = make_task(cfg);
    std::vector<Batch> seen(13);
    for (int step = 1; step <= 12; ++step) first_run->train_batch(3, step, 0, B, seen[step]);
    // A fresh process resumes from the checkpoint of step 8: it builds steps 9..12 (and, out of
    // order, step 5) without building anything before.
    const auto resumed = make_task(cfg);
    for (const int step : {9, 12, 10, 11, 5}) {
      Batch b;
      resumed->train_batch(3, step, 0, B, b);
      CHECK(b.inputs == seen[step].inputs);
      CHECK(b.targets == seen[step].targets);
    }
    Batch other;
    first_run->train_batch(3, 13, 0, B, other);  // another step: other sequences
    CHECK(other.inputs != seen[12].inputs);
    first_run->train_batch(4, 12, 0, B, other);  // another seed: other sequences
    CHECK(other.inputs != seen[12].inputs);
    first_run->eval_batch(3, first_run->train_length(), 0, B, other);
    CHECK(other.inputs != seen[1].inputs);  // eval is drawn apart from training
  }
}

TEST_CASE("the registry names every task and rejects unknown ones", "[batches]") {
  expt::config::TaskConfig cfg;
  cfg.type = "mqar";
  cfg.seq_len = 64;
  CHECK(make_task(cfg)->vocab_size() == 8192);
  cfg.type = "parity";
  CHECK(make_task(cfg)->vocab_size() == 3);
  cfg.type = "mod_arith";
  CHECK(make_task(cfg)->vocab_size() == 10);
  cfg.type = "mystery";
  CHECK_THROWS_WITH(make_task(cfg), Catch::Contains("unknown task type 'mystery'") && Catch::Contains("tokens"));
}
