// Typed configuration of one trial. YAML is parsed once into these structs (core/config/loader);
// nothing downstream touches YAML. Defaults here are the documented defaults (docs/config.md);
// the loader's schema table is the single place that names each key, its type and its domain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace expt::config {

// task: what the model learns. Keys depend on task.type.
struct TaskConfig {
  std::string type = "word_problem";  // word_problem (later issues add mqar, parity, ...)
  // word_problem: group word problem (layers.md section 4.1).
  std::string group = "S3";           // S3 | S4 | A5 | S5 | Z<n> (n >= 2)
  int seq_len = 32;                   // training length
  std::vector<int> eval_lengths;      // eval lengths; empty means {seq_len}
};

struct MixerConfig {
  std::string type = "attention";  // attention (later: gla, deltanet, deltaproduct, ...)
  int heads = 4;                   // d_model must be divisible by heads
  double rope_base = 10000.0;      // attention: RoPE theta
};

struct MlpConfig {
  std::string type = "swiglu";  // swiglu | none
  // 0 means FLA's rule: 256 * ceil(int(d_model * hidden_ratio * 2/3) / 256).
  int intermediate_size = 0;
  double hidden_ratio = 4.0;
};

struct ModelConfig {
  int d_model = 64;
  int n_layers = 2;
  int vocab_size = 0;  // 0: taken from the task
  MixerConfig mixer;
  MlpConfig mlp;
  bool tie_embeddings = false;
  double norm_eps = 1e-6;
  double init_std = 0.02;      // normal(0, init_std) for every Linear and Embedding weight
  std::string init = "normal";  // normal | rescale (o_proj and down_proj scaled by 1/sqrt(2*n_layers))
};

struct OptimizerConfig {
  std::string type = "adamw";  // adamw (later: muon, soap, mfac, dct_adamw)
  double lr = 1e-3;
  double weight_decay = 0.0;
  // AdamW
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  std::string eps_mode = "torch";  // torch | hf (optimizers.md section 1.2)
  bool decay_embeddings = false;   // apply weight decay to embedding (and tied head) weights
};

struct ScheduleConfig {
  std::string type = "constant";  // constant | cosine | wsd | linear
  double warmup = 0.0;            // >= 1: steps; in [0, 1): fraction of train.steps
  double min_lr_ratio = 0.0;      // eta_min = min_lr_ratio * lr (cosine, wsd, linear)
  double decay = 0.2;             // wsd: fraction of total steps in the final linear decay
};

struct TrainConfig {
  std::int64_t steps = 1000;
  int batch_size = 32;            // global batch, in sequences
  int ranks = 1;                  // data-parallel ranks per trial (batch_size % ranks == 0)
  std::int64_t eval_every = 100;  // eval on the grid k*eval_every plus the last step
  int eval_batches = 4;           // batches per eval length
  std::int64_t checkpoint_every = 0;  // 0: no periodic checkpoint
  double grad_clip = 0.0;         // global-norm clip; 0 disables
  std::int64_t log_every = 10;    // train-metric rows are written every step; this is the console cadence
};

struct TrialConfig {
  std::uint64_t seed = 0;
  TaskConfig task;
  ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  std::string out = "runs/trial";  // output directory of the trial
};

}  // namespace expt::config
