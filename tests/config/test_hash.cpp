// The trial hash: FNV-1a (64 bit) of the canonical YAML without `out`, 16 lowercase hex digits.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"

using expt::config::config_hash;
using expt::config::parse_trial_config;
using expt::config::to_canonical_yaml;
using expt::config::TrialConfig;

namespace {

// FNV-1a written out again from its definition (offset basis, prime), independent of the library's.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

const std::string base =
    "seed: 3\n"
    "task: {group: S4, seq_len: 16, eval_lengths: [16, 64]}\n"
    "model:\n"
    "  d_model: 64\n"
    "  mixer: {heads: 4}\n"
    "optimizer: {lr: 3.0e-3, weight_decay: 0.1}\n"
    "schedule: {type: cosine, warmup: 50}\n"
    "train: {steps: 600, batch_size: 32}\n"
    "out: runs/a\n";

std::string hash_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return config_hash(parse_trial_config(yaml, "h.yaml", overrides));
}

}  // namespace

TEST_CASE("FNV-1a 64 matches the published test vectors", "[config][hash]") {
  CHECK(expt::config::fnv1a64_hex("") == "cbf29ce484222325");
  CHECK(expt::config::fnv1a64_hex("a") == "af63dc4c8601ec8c");
  CHECK(expt::config::fnv1a64_hex("foobar") == "85944171f73967e8");
}

TEST_CASE("config_hash is FNV-1a of the canonical YAML without the out line", "[config][hash]") {
  const TrialConfig cfg = parse_trial_config(base, "h.yaml");
  std::string text = to_canonical_yaml(cfg);
  const std::string out_line = "out: runs/a\n";
  REQUIRE(text.size() >= out_line.size());
  REQUIRE(text.substr(text.size() - out_line.size()) == out_line);
  text.resize(text.size() - out_line.size());
  const std::string h = config_hash(cfg);
  CHECK(h == hex16(fnv1a(text)));
  CHECK(h.size() == 16);
  CHECK(h.find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("the same trial written differently has the same hash", "[config][hash]") {
  const std::string reordered =
      "# the same trial, keys in another order, block style, comments, defaults spelt out\n"
      "out: runs/b   # another output directory: not part of the identity\n"
      "train:\n"
      "  batch_size: 32\n"
      "  steps: 600\n"
      "  ranks: 1\n"
      "schedule:\n"
      "  warmup: 50.0\n"
      "  type: cosine\n"
      "optimizer:\n"
      "  weight_decay: 1.0e-1\n"
      "  lr: 0.003\n"
      "  type: adamw\n"
      "model:\n"
      "  mixer:\n"
      "    heads: 4\n"
      "    type: attention\n"
      "  d_model: 64\n"
      "task:\n"
      "  eval_lengths:\n"
      "    - 16\n"
      "    - 64\n"
      "  seq_len: 16\n"
      "  group: S4\n"
      "seed: 3\n";
  CHECK(hash_of(reordered) == hash_of(base));
  CHECK(hash_of(base, {"out=/elsewhere"}) == hash_of(base));
  CHECK(hash_of(base) == hash_of(to_canonical_yaml(parse_trial_config(base, "h.yaml"))));
}

TEST_CASE("any changed value changes the hash", "[config][hash]") {
  std::vector<std::string> changes = {
      "seed=4",
      "task.group=S5",
      "task.seq_len=8",
      "task.eval_lengths=[16, 65]",
      "task.eval_lengths=[16]",
      "model.d_model=128",
      "model.n_layers=3",
      "model.vocab_size=100",
      "model.mixer.heads=8",
      "model.mixer.rope_base=500000",
      "model.mlp.type=none",
      "model.mlp.intermediate_size=128",
      "model.mlp.hidden_ratio=2",
      "model.tie_embeddings=true",
      "model.norm_eps=1e-5",
      "model.init_std=0.01",
      "model.init=rescale",
      "optimizer.weight_decay=0.2",
      "optimizer.beta1=0.95",
      "optimizer.beta2=0.95",
      "optimizer.eps=1e-25",
      "optimizer.eps_mode=hf",
      "optimizer.decay_embeddings=true",
      "schedule.type=linear",
      "schedule.warmup=0.1",
      "schedule.min_lr_ratio=0.1",
      "train.steps=601",
      "train.batch_size=64",
      "train.ranks=2",
      "train.eval_every=50",
      "train.eval_batches=8",
      "train.checkpoint_every=100",
      "train.grad_clip=1",
      "train.log_every=1",
  };
  // The smallest possible change of a float: the next double after the base lr (3e-3).
  char next_lr[64];
  std::snprintf(next_lr, sizeof next_lr, "optimizer.lr=%.17g", std::nextafter(3e-3, 1.0));
  changes.push_back(next_lr);
  std::set<std::string> hashes = {hash_of(base)};
  for (const std::string& change : changes) {
    INFO(change);
    CHECK(hashes.insert(hash_of(base, {change})).second);
  }
  CHECK(hashes.size() == changes.size() + 1);
}

TEST_CASE("a value that does not apply to the type cannot change the hash", "[config][hash]") {
  // schedule.decay is not part of a cosine trial; set programmatically, it is not emitted either.
  TrialConfig a = parse_trial_config(base, "h.yaml");
  TrialConfig b = a;
  b.schedule.decay = 0.9;
  CHECK(config_hash(a) == config_hash(b));
}
