#include "core/config/trial_schema.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

#include "core/config/text.hpp"

namespace expt::config {

using schema::above;
using schema::any_bool;
using schema::at_least;
using schema::Domain;
using schema::int_range;
using schema::key;
using schema::non_empty;
using schema::one_of;
using schema::real_at_least;
using schema::real_range;
using schema::section;
using schema::Table;
using schema::Upper;

namespace {

// Word-problem groups: the named ones, or the cyclic group Zn written without leading zeros.
Domain<std::string> group_domain() {
  const std::string text = "S3, S4, A5, S5, or Zn with 2 <= n <= 1000";
  return {text, [text](const std::string& g) -> std::optional<std::string> {
            const std::vector<std::string> named = {"S3", "S4", "A5", "S5"};
            for (const std::string& n : named)
              if (g == n) return std::nullopt;
            const std::string digits = g.size() > 1 && g[0] == 'Z' ? g.substr(1) : "";
            const bool is_number = !digits.empty() && digits.size() <= 4 && digits[0] != '0' &&
                                   digits.find_first_not_of("0123456789") == std::string::npos;
            if (is_number) {
              int n = 0;
              std::from_chars(digits.data(), digits.data() + digits.size(), n);
              if (n >= 2 && n <= 1000) return std::nullopt;
              return cat("cyclic group order must be in [2, 1000], got ", digits);
            }
            std::string message = cat("'", g, "' is not a known group (", text, ")");
            if (const auto guess = schema::closest_match(g, named)) message += cat("; did you mean '", *guess, "'?");
            return message;
          }};
}

// Warmup is a number of steps (a whole number >= 1) or a fraction of train.steps (in [0, 1)).
Domain<double> warmup_domain() {
  return {"[0, 1) (fraction of train.steps) or a whole number >= 1 (steps)",
          [](const double& w) -> std::optional<std::string> {
            if (!std::isfinite(w)) return std::string("must be a finite number");
            if (w < 0) return cat("must be >= 0, got ", schema::show(w));
            if (w < 1 || w == std::floor(w)) return std::nullopt;
            return cat("warmup ", schema::show(w),
                       " is neither a fraction of train.steps in [0, 1) nor a whole number of steps");
          }};
}

const Table<TaskConfig>& task_table() {
  static const Table<TaskConfig> table{
      "type",
      &TaskConfig::type,
      {
          key("type", &TaskConfig::type, one_of({"word_problem"}), "what the model learns"),
          key("group", &TaskConfig::group, group_domain(),
              "group of the word problem: symmetric S3/S4/S5, alternating A5, cyclic Zn", {"word_problem"}),
          key("seq_len", &TaskConfig::seq_len, at_least(1), "training sequence length", {"word_problem"}),
          key("eval_lengths", &TaskConfig::eval_lengths, at_least(1),
              "lengths evaluated at each eval, each >= seq_len and listed once; [] means [seq_len]", {"word_problem"}),
      }};
  return table;
}

const Table<MixerConfig>& mixer_table() {
  static const Table<MixerConfig> table{
      "type",
      &MixerConfig::type,
      {
          key("type", &MixerConfig::type, one_of({"attention"}), "sequence mixer of every block"),
          key("heads", &MixerConfig::heads, at_least(1),
              "attention heads; d_model / heads must be a whole, even head dimension (RoPE)", {"attention"}),
          key("rope_base", &MixerConfig::rope_base, above(0), "RoPE theta", {"attention"}),
      }};
  return table;
}

const Table<MlpConfig>& mlp_table() {
  static const Table<MlpConfig> table{
      "type",
      &MlpConfig::type,
      {
          key("type", &MlpConfig::type, one_of({"swiglu", "none"}), "channel mixer of every block; none: no MLP"),
          key("intermediate_size", &MlpConfig::intermediate_size, at_least(0),
              "hidden width; 0: 256 * ceil(int(d_model * hidden_ratio * 2/3) / 256)", {"swiglu"}),
          key("hidden_ratio", &MlpConfig::hidden_ratio, above(0), "sizes the hidden width when intermediate_size is 0",
              {"swiglu"}),
      }};
  return table;
}

const Table<ModelConfig>& model_table() {
  static const Table<ModelConfig> table{
      "",
      nullptr,
      {
          key("d_model", &ModelConfig::d_model, at_least(1), "residual stream width"),
          key("n_layers", &ModelConfig::n_layers, at_least(1), "number of blocks"),
          key("vocab_size", &ModelConfig::vocab_size, at_least(0), "vocabulary size; 0 takes the task's"),
          section("mixer", &ModelConfig::mixer, mixer_table()),
          section("mlp", &ModelConfig::mlp, mlp_table()),
          key("tie_embeddings", &ModelConfig::tie_embeddings, any_bool(),
              "the output head shares the embedding matrix"),
          key("norm_eps", &ModelConfig::norm_eps, above(0), "RMSNorm epsilon"),
          key("init_std", &ModelConfig::init_std, above(0),
              "std of the normal init of every Linear and Embedding weight"),
          key("init", &ModelConfig::init, one_of({"normal", "rescale"}),
              "rescale: o_proj and down_proj weights also scaled by 1/sqrt(2 * n_layers)"),
      }};
  return table;
}

const Table<OptimizerConfig>& optimizer_table() {
  static const Table<OptimizerConfig> table{
      "type",
      &OptimizerConfig::type,
      {
          key("type", &OptimizerConfig::type, one_of({"adamw"}), "optimizer (optimizers.md)"),
          key("lr", &OptimizerConfig::lr, above(0), "peak learning rate (before the schedule)"),
          key("weight_decay", &OptimizerConfig::weight_decay, real_at_least(0),
              "decoupled weight decay coefficient, applied as lr_t * weight_decay * W"),
          key("beta1", &OptimizerConfig::beta1, real_range(0, 1, Upper::open), "first-moment EMA decay", {"adamw"}),
          key("beta2", &OptimizerConfig::beta2, real_range(0, 1, Upper::open), "second-moment EMA decay", {"adamw"}),
          key("eps", &OptimizerConfig::eps, real_at_least(0), "denominator epsilon", {"adamw"}),
          key("eps_mode", &OptimizerConfig::eps_mode, one_of({"torch", "hf"}),
              "where eps enters: torch after bias correction, hf before (optimizers.md 1.2)", {"adamw"}),
          key("decay_embeddings", &OptimizerConfig::decay_embeddings, any_bool(),
              "apply weight decay to the embedding (and tied head) weights"),
      }};
  return table;
}

const Table<ScheduleConfig>& schedule_table() {
  static const Table<ScheduleConfig> table{
      "type",
      &ScheduleConfig::type,
      {
          key("type", &ScheduleConfig::type, one_of({"constant", "cosine", "wsd", "linear"}),
              "learning-rate schedule after the linear warmup"),
          key("warmup", &ScheduleConfig::warmup, warmup_domain(),
              "linear warmup from 0: >= 1 a number of steps, < 1 a fraction of train.steps"),
          key("min_lr_ratio", &ScheduleConfig::min_lr_ratio, real_range(0, 1, Upper::closed),
              "final learning rate as a fraction of lr", {"cosine", "wsd", "linear"}),
          key("decay", &ScheduleConfig::decay, real_range(0, 1, Upper::closed),
              "fraction of train.steps spent in the final linear decay", {"wsd"}),
      }};
  return table;
}

const Table<TrainConfig>& train_table() {
  static const Table<TrainConfig> table{
      "",
      nullptr,
      {
          key("steps", &TrainConfig::steps, at_least(1), "optimizer steps"),
          key("batch_size", &TrainConfig::batch_size, at_least(1), "global batch in sequences, split over ranks"),
          key("ranks", &TrainConfig::ranks, at_least(1), "data-parallel ranks per trial; must divide batch_size"),
          key("eval_every", &TrainConfig::eval_every, at_least(1),
              "eval at every multiple of this step and at the last"),
          key("eval_batches", &TrainConfig::eval_batches, at_least(1), "batches per eval length"),
          key("checkpoint_every", &TrainConfig::checkpoint_every, at_least(0), "periodic checkpoint cadence; 0: none"),
          key("grad_clip", &TrainConfig::grad_clip, real_at_least(0), "global gradient-norm clip; 0: no clipping"),
          key("log_every", &TrainConfig::log_every, at_least(1), "console progress cadence in steps"),
      }};
  return table;
}

// Reports `message` at the first of `paths` that the config gives (the whole file if none).
void conflict(schema::Reader& r, const std::vector<std::string>& paths, const std::string& file,
              const std::string& message) {
  for (const std::string& p : paths) {
    if (const Position* at = r.where(p)) {
      r.error(*at, p, message);
      return;
    }
  }
  r.error(Position{file, 0, 0, 0}, paths.front(), message);
}

bool all_valid(const schema::Reader& r, const std::vector<std::string>& paths) {
  for (const std::string& p : paths)
    if (r.failed(p)) return false;
  return true;
}

std::string str(std::int64_t v) { return std::to_string(v); }

}  // namespace

const Table<TrialConfig>& trial_table() {
  static const Table<TrialConfig> table{
      "",
      nullptr,
      {
          key("seed", &TrialConfig::seed, int_range(0, std::numeric_limits<std::int64_t>::max(), "[0, 2^63)"),
              "seed of every random stream (initial weights, batches)"),
          section("task", &TrialConfig::task, task_table()),
          section("model", &TrialConfig::model, model_table()),
          section("optimizer", &TrialConfig::optimizer, optimizer_table()),
          section("schedule", &TrialConfig::schedule, schedule_table()),
          section("train", &TrialConfig::train, train_table()),
          key("out", &TrialConfig::out, non_empty(), "output directory of the trial (not part of the trial hash)"),
      }};
  return table;
}

void check_conflicts(const TrialConfig& cfg, const std::string& file, schema::Reader& r) {
  const TrainConfig& train = cfg.train;
  const ScheduleConfig& schedule = cfg.schedule;

  // Warmup counted in steps: whole steps as given, or a fraction of the run.
  const double steps = static_cast<double>(train.steps);
  const double warmup_steps = schedule.warmup >= 1 ? schedule.warmup : schedule.warmup * steps;
  if (all_valid(r, {"schedule.warmup", "train.steps"}) && schedule.warmup >= 1 && schedule.warmup > steps) {
    conflict(r, {"schedule.warmup", "train.steps"}, file,
             cat("warmup of ", str(static_cast<std::int64_t>(schedule.warmup)), " steps exceeds train.steps (",
                 str(train.steps), ")"));
  } else if (schedule.type == "wsd" &&
             all_valid(r, {"schedule.type", "schedule.warmup", "schedule.decay", "train.steps"}) &&
             warmup_steps + schedule.decay * steps > steps * (1 + 1e-12)) {
    conflict(r, {"schedule.decay", "schedule.warmup", "train.steps"}, file,
             cat("warmup (", schema::show(warmup_steps), " steps) plus the wsd decay (decay * train.steps = ",
                 schema::show(schedule.decay * steps), " steps) exceed train.steps (", str(train.steps), ")"));
  }

  if (all_valid(r, {"train.batch_size", "train.ranks"}) && train.batch_size % train.ranks != 0) {
    conflict(r, {"train.batch_size", "train.ranks"}, file,
             cat("train.batch_size ", str(train.batch_size), " is not divisible by train.ranks ", str(train.ranks)));
  }

  const ModelConfig& model = cfg.model;
  if (model.mixer.type == "attention" && all_valid(r, {"model.mixer.type", "model.d_model", "model.mixer.heads"})) {
    if (model.d_model % model.mixer.heads != 0) {
      conflict(
          r, {"model.mixer.heads", "model.d_model"}, file,
          cat("model.d_model ", str(model.d_model), " is not divisible by model.mixer.heads ", str(model.mixer.heads)));
    } else if ((model.d_model / model.mixer.heads) % 2 != 0) {
      conflict(r, {"model.mixer.heads", "model.d_model"}, file,
               cat("head dimension model.d_model / model.mixer.heads = ", str(model.d_model / model.mixer.heads),
                   " must be even (RoPE rotates pairs of features)"));
    }
  }

  const TaskConfig& task = cfg.task;
  if (task.type == "word_problem" && all_valid(r, {"task.type", "task.seq_len", "task.eval_lengths"})) {
    std::set<int> seen;
    for (std::size_t i = 0; i < task.eval_lengths.size(); ++i) {
      const int length = task.eval_lengths[i];
      const std::string element = cat("task.eval_lengths[", std::to_string(i), "]");
      if (length < task.seq_len) {
        conflict(r, {element, "task.seq_len"}, file,
                 cat("eval length ", str(length), " is shorter than task.seq_len (", str(task.seq_len), ")"));
      } else if (!seen.insert(length).second) {
        conflict(r, {element}, file, cat("eval length ", str(length), " is listed twice"));
      }
    }
  }
}

}  // namespace expt::config
