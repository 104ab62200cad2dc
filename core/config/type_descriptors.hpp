// One descriptor per mixer type and per optimizer type: its name, the keys that apply to it and its
// defaults; a mixer type also says how the model width splits into its heads. Everything that lists
// types is derived from these tables: the schema (trial_schema.cpp: the `type` domain, each key's
// "applies to", the per-type defaults in docs/config.md, `expt types`), the conflict checks and the
// factories (core/nn/mixer.cpp, optimizers/registry.cpp), which switch over the kind with no
// default, so the compiler (-Wswitch, an error here) refuses a kind without a factory.
//
// Adding a type: a kind, a row in the table of type_descriptors.cpp (name, keys, defaults), a
// case in the factory, and any new key in trial_schema.cpp's table.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/config/trial_config.hpp"

namespace expt::config {

enum class OptimizerKind { adamw, muon, soap, mfac, dct_adamw };

struct OptimizerType {
  OptimizerKind kind;
  std::string name;
  std::vector<std::string> keys;       // keys of `optimizer` besides common_optimizer_keys()
  void (*defaults)(OptimizerConfig&);  // turns the struct's defaults into this type's
};

// In the order of the `optimizer.type` domain.
const std::vector<OptimizerType>& optimizer_types();
// Keys of `optimizer` that apply to every type (`type` itself among them).
const std::vector<std::string>& common_optimizer_keys();
// The descriptor named `name`, or nullptr.
const OptimizerType* find_optimizer_type(std::string_view name);

enum class MixerKind { attention, gla, deltanet, deltaproduct, gated_deltaproduct, base_conv, none };

// How d_model splits into heads: key and value width per head.
struct HeadDims {
  int heads = 0, key_dim = 0, value_dim = 0;
};
// Why it does not: the message, and the keys it is reported at (the first one the config gives).
struct SizingConflict {
  std::vector<std::string> keys;
  std::string message;
};
using MixerSizing = std::variant<HeadDims, SizingConflict>;

struct MixerType {
  MixerKind kind;
  std::string name;
  std::vector<std::string> keys;   // keys of `model.mixer` besides `type`
  void (*defaults)(MixerConfig&);  // turns the struct's defaults into this type's
  // The head split of a model with this mixer (nullptr for none) and the keys it reads: the
  // config check reports the conflict (skipped when one of those keys has an error of its own),
  // the layer factory throws it.
  MixerSizing (*sizing)(const ModelConfig&);
  std::vector<std::string> sizing_keys;
};

// In the order of the `model.mixer.type` domain.
const std::vector<MixerType>& mixer_types();
// The descriptor named `name`, or nullptr.
const MixerType* find_mixer_type(std::string_view name);

}  // namespace expt::config
