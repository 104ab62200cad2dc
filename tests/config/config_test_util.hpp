// Helpers for the config tests: expected errors, and a field-by-field comparison of TrialConfigs
// (doubles compared bit for bit).
#pragma once

#include <bit>
#include <catch2/catch.hpp>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/config/loader.hpp"

namespace expt::config::test {

struct ExpectedError {
  std::string file;
  int line;
  int col;
  std::string key_path;
  std::string message_part;  // a substring of the message
};

// Parses `yaml` (named `file`) with `overrides`; returns the errors (empty if it loaded).
inline std::vector<ConfigError> errors_of(const std::string& yaml, const std::vector<std::string>& overrides = {},
                                          const std::string& file = "bad.yaml") {
  try {
    parse_trial_config(yaml, file, overrides);
  } catch (const ConfigErrors& e) {
    return e.errors();
  }
  return {};
}

inline std::string show_errors(const std::vector<ConfigError>& errors) {
  std::ostringstream s;
  for (const ConfigError& e : errors) s << "  " << e.str() << "\n";
  return s.str();
}

// Checks that the errors are exactly `expected`, in this order.
inline void check_errors(const std::vector<ConfigError>& errors, const std::vector<ExpectedError>& expected) {
  INFO("errors:\n" << show_errors(errors));
  REQUIRE(errors.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("error " << i << ": " << errors[i].str());
    CHECK(errors[i].file == expected[i].file);
    CHECK(errors[i].line == expected[i].line);
    CHECK(errors[i].col == expected[i].col);
    CHECK(errors[i].key_path == expected[i].key_path);
    CHECK_THAT(errors[i].message, Catch::Matchers::Contains(expected[i].message_part));
  }
}

inline bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

// Every field of a and b equal (doubles bit for bit). Written out field by field so that a field
// the loader forgets to read or write shows up by name.
inline void check_same_config(const TrialConfig& a, const TrialConfig& b) {
  CHECK(a.seed == b.seed);
  CHECK(a.task.type == b.task.type);
  CHECK(a.task.group == b.task.group);
  CHECK(a.task.seq_len == b.task.seq_len);
  CHECK(a.task.eval_lengths == b.task.eval_lengths);
  CHECK(a.model.d_model == b.model.d_model);
  CHECK(a.model.n_layers == b.model.n_layers);
  CHECK(a.model.vocab_size == b.model.vocab_size);
  CHECK(a.model.mixer.type == b.model.mixer.type);
  CHECK(a.model.mixer.heads == b.model.mixer.heads);
  CHECK(same_bits(a.model.mixer.rope_base, b.model.mixer.rope_base));
  CHECK(a.model.mlp.type == b.model.mlp.type);
  CHECK(a.model.mlp.intermediate_size == b.model.mlp.intermediate_size);
  CHECK(same_bits(a.model.mlp.hidden_ratio, b.model.mlp.hidden_ratio));
  CHECK(a.model.tie_embeddings == b.model.tie_embeddings);
  CHECK(same_bits(a.model.norm_eps, b.model.norm_eps));
  CHECK(same_bits(a.model.init_std, b.model.init_std));
  CHECK(a.model.init == b.model.init);
  CHECK(a.optimizer.type == b.optimizer.type);
  CHECK(same_bits(a.optimizer.lr, b.optimizer.lr));
  CHECK(same_bits(a.optimizer.weight_decay, b.optimizer.weight_decay));
  CHECK(same_bits(a.optimizer.beta1, b.optimizer.beta1));
  CHECK(same_bits(a.optimizer.beta2, b.optimizer.beta2));
  CHECK(same_bits(a.optimizer.eps, b.optimizer.eps));
  CHECK(a.optimizer.eps_mode == b.optimizer.eps_mode);
  CHECK(a.optimizer.decay_embeddings == b.optimizer.decay_embeddings);
  CHECK(a.schedule.type == b.schedule.type);
  CHECK(same_bits(a.schedule.warmup, b.schedule.warmup));
  CHECK(same_bits(a.schedule.min_lr_ratio, b.schedule.min_lr_ratio));
  CHECK(same_bits(a.schedule.decay, b.schedule.decay));
  CHECK(a.train.steps == b.train.steps);
  CHECK(a.train.batch_size == b.train.batch_size);
  CHECK(a.train.ranks == b.train.ranks);
  CHECK(a.train.eval_every == b.train.eval_every);
  CHECK(a.train.eval_batches == b.train.eval_batches);
  CHECK(a.train.checkpoint_every == b.train.checkpoint_every);
  CHECK(same_bits(a.train.grad_clip, b.train.grad_clip));
  CHECK(a.train.log_every == b.train.log_every);
  CHECK(a.out == b.out);
}

}  // namespace expt::config::test
