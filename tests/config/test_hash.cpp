// The trial hash: FNV-1a (64 bit) of the config schema line and the keys that differ from their
// defaults (minimal_yaml), 16 lowercase hex digits. Writing a default out, or a binary that adds a
// key with a default, changes no id (decision 79).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <set>
#include <string>

#include "core/config/canonical.hpp"
#include "core/config/loader.hpp"
#include "core/config/schema.hpp"
#include "core/config/trial_schema.hpp"

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

TEST_CASE("config_hash is FNV-1a of the config schema line and the minimal YAML", "[config][hash]") {
  const TrialConfig cfg = parse_trial_config(base, "h.yaml");
  const std::string minimal = expt::config::minimal_yaml(cfg);
  // Only what differs from the defaults, in schema order, without out.
  CHECK(minimal ==
        "seed: 3\n"
        "task:\n"
        "  group: S4\n"
        "  seq_len: 16\n"
        "  eval_lengths: [16, 64]\n"
        "optimizer:\n"
        "  lr: 3.0e-03\n"
        "  weight_decay: 1.0e-01\n"
        "schedule:\n"
        "  type: cosine\n"
        "  warmup: 5.0e+01\n"
        "train:\n"
        "  steps: 600\n");
  const std::string h = config_hash(cfg);
  CHECK(h == hex16(fnv1a("config_schema: " + std::to_string(expt::config::kConfigSchemaVersion) + "\n" + minimal)));
  CHECK(h.size() == 16);
  CHECK(h.find_first_not_of("0123456789abcdef") == std::string::npos);
  // The minimal form reads back as the same config.
  CHECK(to_canonical_yaml(parse_trial_config(minimal + "out: runs/a\n", "m.yaml")) == to_canonical_yaml(cfg));
  CHECK(expt::config::minimal_yaml(TrialConfig{}).empty());
}

TEST_CASE("writing a default out leaves the hash unchanged, per type", "[config][hash]") {
  // Every key of the base, spelt out at its default, and defaults of other sections.
  CHECK(hash_of(to_canonical_yaml(parse_trial_config(base, "h.yaml"))) == hash_of(base));
  CHECK(hash_of(base, {"optimizer.beta1=0.9", "train.ranks=1", "model.mixer.rope_base=10000", "task.type=word_problem",
                       "model.mixer.type=attention", "optimizer.type=adamw"}) == hash_of(base));
  // Relative to the type's defaults (decision 16): Muon's lr 0.02 is its default, AdamW's 1e-3 is not.
  const std::string muon = "optimizer: {type: muon}\n";
  CHECK(hash_of("optimizer: {type: muon, lr: 0.02, beta2: 0.95, eps: 1.0e-10, adam_lr_ratio: 0.2}\n") == hash_of(muon));
  CHECK(hash_of("optimizer: {type: muon, lr: 1.0e-3}\n") != hash_of(muon));
  CHECK(hash_of("optimizer: {type: mfac, momentum: 0.0}\n") == hash_of("optimizer: {type: mfac}\n"));
  CHECK(hash_of("model: {mixer: {type: gla, expand_k: 0.5, use_short_conv: false}}\n") ==
        hash_of("model: {mixer: {type: gla}}\n"));
  CHECK(hash_of("model: {mixer: {type: gla, expand_k: 1.0}}\n") != hash_of("model: {mixer: {type: gla}}\n"));
  // A type is written only when it is not the plain default; its keys then only where they differ.
  CHECK(expt::config::minimal_yaml(parse_trial_config(muon, "h.yaml")) == "optimizer:\n  type: muon\n");
  CHECK(expt::config::minimal_yaml(parse_trial_config("model: {mixer: {type: gla, heads: 2}}\n", "h.yaml")) ==
        "model:\n  mixer:\n    type: gla\n    heads: 2\n");
}

TEST_CASE("the minimal YAML reads back as the same config for every type", "[config][hash]") {
  for (const std::string optimizer : {"adamw", "muon", "soap", "mfac", "dct_adamw"})
    for (const std::string mixer : {"attention", "gla", "deltanet", "deltaproduct", "gated_deltaproduct", "none"}) {
      INFO(optimizer << " " << mixer);
      // The base gives mixer heads, which a mixer of type none does not have.
      std::string yaml = base;
      if (mixer == "none") yaml.replace(yaml.find("mixer: {heads: 4}"), 17, "mixer: {type: none}");
      std::vector<std::string> sets = {"optimizer.type=" + optimizer, "model.mixer.type=" + mixer, "optimizer.lr=0.02",
                                       "schedule.type=wsd"};
      if (mixer != "none") sets.push_back("model.mixer.heads=2");
      const TrialConfig cfg = parse_trial_config(yaml, "h.yaml", sets);
      const TrialConfig again = parse_trial_config(expt::config::minimal_yaml(cfg), "m.yaml", {"out=runs/a"});
      CHECK(to_canonical_yaml(again) == to_canonical_yaml(cfg));
      CHECK(config_hash(again) == config_hash(cfg));
    }
}

TEST_CASE("a binary that adds keys with defaults keeps every id", "[config][hash]") {
  using expt::config::schema::Key;
  using expt::config::schema::Sink;
  // A copy of the trial schema with two new keys: one with a plain default, one whose default
  // depends on optimizer.type (like decision 16's per-type defaults). A config of today has no
  // value for them, so it takes their defaults, as an old config read by a newer binary does.
  auto extended = expt::config::trial_table();
  const auto added = [](std::string name, std::function<std::string(const TrialConfig&)> value) {
    Key<TrialConfig> k;
    k.name = name;
    k.read = [](const expt::config::YamlNode&, TrialConfig&, const std::string&, expt::config::schema::Reader&) {
      return true;
    };
    k.write = [name, value](const TrialConfig& s, const std::string& path, int depth, Sink& out) {
      out.leaf(path, depth, name, value(s));
    };
    k.describe = [](const std::string&, const std::string&, const std::vector<std::pair<std::string, TrialConfig>>&,
                    std::vector<expt::config::schema::DocRow>&) {};
    return k;
  };
  extended.keys.insert(extended.keys.end() - 1, added("new_plain", [](const TrialConfig&) { return "7"; }));
  extended.keys.insert(extended.keys.end() - 1, added("new_per_type", [](const TrialConfig& s) {
                         return s.optimizer.type == "muon" ? std::string("2.0e-01") : std::string("1.0e-01");
                       }));
  // The full canonical form, and with it the id of before decision 79, does change.
  struct Count final : Sink {
    int leaves = 0;
    void leaf(const std::string&, int, const std::string&, const std::string&) override { ++leaves; }
    void section(const std::string&, int, const std::string&) override {}
  };
  int checked = 0;
  for (const std::vector<std::string>& sets :
       std::vector<std::vector<std::string>>{{},
                                             {"optimizer.type=muon"},
                                             {"optimizer.type=soap", "model.mixer.type=gla"},
                                             {"seed=9", "train.steps=70"}}) {
    const TrialConfig cfg = parse_trial_config(base, "h.yaml", sets);
    Count before, after;
    expt::config::trial_table().write(cfg, "", 0, before);
    extended.write(cfg, "", 0, after);
    REQUIRE(after.leaves == before.leaves + 2);
    CHECK(expt::config::minimal_yaml(cfg, extended) == expt::config::minimal_yaml(cfg));
    CHECK(config_hash(cfg, extended) == config_hash(cfg));
    ++checked;
  }
  CHECK(checked == 4);
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
