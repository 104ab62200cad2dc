#include "core/config/trial_schema.hpp"

#include <glob.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <stdexcept>

#include "core/config/text.hpp"
#include "core/config/type_descriptors.hpp"

namespace expt::config {

using schema::above;
using schema::any_bool;
using schema::at_least;
using schema::choice;
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

// A fraction strictly between 0 and 1.
Domain<double> open_unit_interval() {
  return {"(0, 1)", [](const double& v) -> std::optional<std::string> {
            if (std::isfinite(v) && v > 0 && v < 1) return std::nullopt;
            return cat("must be in (0, 1), got ", schema::show(v));
          }};
}

// A list of non-empty strings (task.paths), written as a flow list of canonical strings. The
// generic key() covers scalars and integer lists; this is the schema's one list of strings.
schema::Key<TaskConfig> string_list_key(std::string name, std::vector<std::string> TaskConfig::*member, std::string doc,
                                        std::vector<std::string> applies_to) {
  schema::Key<TaskConfig> k;
  k.name = name;
  k.applies_to = std::move(applies_to);
  k.read = [member](const YamlNode& node, TaskConfig& s, const std::string& path, schema::Reader& r) {
    r.given(path, node.pos);
    if (node.kind != YamlNode::Kind::sequence) {
      r.error(node.pos, path, cat("expected a list of strings, got ", describe_node(node)));
      return false;
    }
    std::vector<std::string> values;
    bool ok = true;
    for (std::size_t i = 0; i < node.items.size(); ++i) {
      const YamlNode& item = node.items[i];
      const std::string item_path = cat(path, "[", std::to_string(i), "]");
      r.given(item_path, item.pos);
      if (item.kind != YamlNode::Kind::scalar) {
        r.error(item.pos, item_path, cat("expected a string, got ", describe_node(item)));
        ok = false;
      } else if (item.text.empty()) {
        r.error(item.pos, item_path, "must not be empty");
        ok = false;
      } else {
        values.push_back(item.text);
      }
    }
    if (ok) s.*member = std::move(values);
    return ok;
  };
  const auto flow_list = [](const std::vector<std::string>& values) {
    std::string text = "[";
    for (std::size_t i = 0; i < values.size(); ++i) text += cat(i ? ", " : "", schema::format_value(values[i]));
    return text + "]";
  };
  k.write = [member, name, flow_list](const TaskConfig& s, const std::string& path, int depth, schema::Sink& out) {
    out.leaf(path, depth, name, flow_list(s.*member));
  };
  k.describe = [member, doc, flow_list](const std::string& path, const std::string& applies_text,
                                        const std::vector<std::pair<std::string, TaskConfig>>&,
                                        std::vector<schema::DocRow>& rows) {
    const TaskConfig defaults{};
    rows.push_back(
        schema::DocRow{path, "list of strings", flow_list(defaults.*member), "each non-empty", applies_text, doc});
  };
  return k;
}

const Table<TaskConfig>& task_table() {
  static const Table<TaskConfig> table{
      "type",
      &TaskConfig::type,
      {
          key("type", &TaskConfig::type, one_of({"word_problem", "mqar", "parity", "mod_arith", "text", "tokens"}),
              "what the model learns (docs/tasks.md)"),
          key("group", &TaskConfig::group, group_domain(),
              "group of the word problem: symmetric S3/S4/S5, alternating A5, cyclic Zn", {"word_problem"}),
          key("seq_len", &TaskConfig::seq_len, at_least(1),
              "training sequence length (parity, mod_arith: the longest training length; text, tokens: windows of "
              "seq_len + 1 tokens)"),
          key("eval_lengths", &TaskConfig::eval_lengths, at_least(1),
              "lengths evaluated at each eval, each >= seq_len and listed once; [] means [seq_len]"),
          key("vocab_size", &TaskConfig::vocab_size, at_least(2),
              "vocabulary size (mqar: keys from [1, V/2), values from [V/2, V); tokens: every token id must be "
              "below it)",
              {"mqar", "tokens"}),
          key("num_kv_pairs", &TaskConfig::num_kv_pairs, at_least(1),
              "key-value pairs per sequence, each queried once; 4 * num_kv_pairs <= seq_len", {"mqar"}),
          key("power_a", &TaskConfig::power_a, above(0),
              "query gaps drawn with probability proportional to a * i^(a-1), i = gap + 1 (1: uniform)", {"mqar"}),
          key("random_non_queries", &TaskConfig::random_non_queries, any_bool(),
              "fill the slots between queries with uniform random tokens instead of 0", {"mqar"}),
          key("min_len", &TaskConfig::min_len, at_least(1),
              "shortest training length; training lengths are uniform in [min_len, seq_len]", {"parity", "mod_arith"}),
          key("modulus", &TaskConfig::modulus, int_range(2, 1000, "[2, 1000]"),
              "digits 0..modulus-1, the answer is the expression's value mod modulus", {"mod_arith"}),
          string_list_key("paths", &TaskConfig::paths,
                          "text files or glob patterns (matches sorted), read as bytes; the default is Debian's "
                          "fortunes corpus (docs/tasks.md)",
                          {"text"}),
          key("val_fraction", &TaskConfig::val_fraction, open_unit_interval(),
              "fraction of the split blocks that go to validation, spread evenly", {"text"}),
          key("split_block_bytes", &TaskConfig::split_block_bytes, at_least(1),
              "size of the blocks the train/validation split assigns", {"text"}),
          key("train_path", &TaskConfig::train_path, non_empty(),
              "training token file, or a glob pattern for several shards", {"tokens"}),
          key("val_path", &TaskConfig::val_path, non_empty(),
              "validation token file, or a glob pattern for several shards", {"tokens"}),
          key("format", &TaskConfig::format, one_of({"nanogpt", "llmc"}),
              "nanogpt: raw little-endian uint16 tokens; llmc: llm.c shard (256-int32 header, then tokens)",
              {"tokens"}),
      }};
  return table;
}

// A section whose `type` selects keys and defaults from descriptors (type_descriptors.hpp): the
// type key's domain is the descriptors' names and reading it resets the section to that type's
// defaults (explicit keys, read after it, override them); a key applies to the types that list it,
// or to every type when it is in `common`. A key no type lists, or a listed key the table lacks,
// is a programming error, reported when the table is built (the first config load or test).
template <class S, class Descriptor>
Table<S> typed_table(std::string S::*selector, const std::vector<Descriptor>& types,
                     const std::vector<std::string>& common, S (*defaults_of)(const std::string&), std::string type_doc,
                     std::vector<schema::Key<S>> keys) {
  std::vector<std::string> names;
  for (const Descriptor& t : types) names.push_back(t.name);
  auto type_key = key("type", selector, one_of(names), std::move(type_doc));
  type_key.read = [plain = type_key.read, selector, defaults_of](const YamlNode& node, S& s, const std::string& path,
                                                                 schema::Reader& r) {
    if (!plain(node, s, path, r)) return false;
    s = defaults_of(s.*selector);
    return true;
  };
  keys.insert(keys.begin(), std::move(type_key));
  for (schema::Key<S>& k : keys) {
    if (std::find(common.begin(), common.end(), k.name) != common.end()) continue;
    for (const Descriptor& t : types)
      if (std::find(t.keys.begin(), t.keys.end(), k.name) != t.keys.end()) k.applies_to.push_back(t.name);
    if (k.applies_to.empty()) throw std::logic_error(cat("config key '", k.name, "' applies to no type"));
  }
  Table<S> table{"type", selector, std::move(keys), names, defaults_of};
  for (const Descriptor& t : types)
    for (const std::string& name : t.keys)
      if (table.find(name) == nullptr)
        throw std::logic_error(cat("type '", t.name, "' lists unknown key '", name, "'"));
  return table;
}

const Table<MixerConfig>& mixer_table() {
  static const Table<MixerConfig> table = typed_table<MixerConfig>(
      &MixerConfig::type, mixer_types(), {"type"}, &mixer_defaults,
      "sequence mixer of every block (docs/layers.md); none: no mixer sub-block; sets the per-type defaults of "
      "the other rows",
      {
          key("heads", &MixerConfig::heads, at_least(1),
              "heads; attention: d_model / heads must be a whole, even head dimension (RoPE); gla, deltanet: "
              "must divide the total key and value dims"),
          key("head_dim", &MixerConfig::head_dim, at_least(0),
              "key dimension per head; 0: d_model / heads (FLA's layer uses 256 at d_model 2048)"),
          key("expand_k", &MixerConfig::expand_k, above(0),
              "total key dimension int(d_model * expand_k), split over heads"),
          key("expand_v", &MixerConfig::expand_v, above(0),
              "gla, deltanet: total value dimension int(d_model * expand_v); deltaproduct types: value dimension "
              "per head = head_dim * expand_v"),
          key("num_householder", &MixerConfig::num_householder, at_least(1),
              "Householder steps per token (n_h); 1 is (gated) DeltaNet"),
          key("allow_neg_eigval", &MixerConfig::allow_neg_eigval, any_bool(),
              "beta = 2 sigmoid(.) in (0, 2) (transition eigenvalues in (-1, 1]) instead of (0, 1)"),
          key("use_forget_gate", &MixerConfig::use_forget_gate, any_bool(),
              "scalar per-head decay g = -exp(A_log) softplus(x W_a + dt_bias) (Gated DeltaNet / DeltaProduct); "
              "gated_deltaproduct always has it"),
          key("use_short_conv", &MixerConfig::use_short_conv, any_bool(),
              "causal depthwise convolution + SiLU on q, k, v"),
          key("conv_size", &MixerConfig::conv_size, at_least(1),
              "short convolution kernel width; base_conv: width of its depthwise causal convolution"),
          key("use_output_gate", &MixerConfig::use_output_gate, any_bool(),
              "output RMSNorm(o) * SiLU(x W_g) instead of RMSNorm(o)"),
          key("gate_low_rank_dim", &MixerConfig::gate_low_rank_dim, at_least(1),
              "rank of the forget-gate projection d -> r -> D_k"),
          key("gate_logit_normalizer", &MixerConfig::gate_logit_normalizer, above(0),
              "log-gate = logsigmoid(z) / gate_logit_normalizer"),
          key("chunk_size", &MixerConfig::chunk_size, at_least(1), "chunk length of the chunked kernels"),
          key("rope_base", &MixerConfig::rope_base, above(0), "RoPE theta"),
      });
  return table;
}

const Table<MlpConfig>& mlp_table() {
  static const Table<MlpConfig> table{
      "type",
      &MlpConfig::type,
      {
          key("type", &MlpConfig::type, one_of({"swiglu", "silu", "none"}),
              "channel mixer of every block: swiglu down(silu(gate x) * up x); silu down(silu(up x)); none: no MLP"),
          key("intermediate_size", &MlpConfig::intermediate_size, at_least(0),
              "hidden width; 0: swiglu 256 * ceil(int(d_model * hidden_ratio * 2/3) / 256), silu int(d_model * "
              "hidden_ratio)",
              {"swiglu", "silu"}),
          key("hidden_ratio", &MlpConfig::hidden_ratio, above(0), "sizes the hidden width when intermediate_size is 0",
              {"swiglu", "silu"}),
      }};
  return table;
}

// model.hybrid_mixer: model.mixer's table, documented as what it is here (its own meaning, and the
// default type none of ModelConfig's member rather than MixerConfig's attention).
schema::Key<ModelConfig> hybrid_mixer_section() {
  schema::Key<ModelConfig> k = section("hybrid_mixer", &ModelConfig::hybrid_mixer, mixer_table());
  k.describe = [](const std::string& path, const std::string&, const std::vector<std::pair<std::string, ModelConfig>>&,
                  std::vector<schema::DocRow>& rows) {
    const std::size_t first = rows.size();
    mixer_table().describe(path, rows);
    for (std::size_t i = first; i < rows.size(); ++i)
      if (rows[i].path == schema::join_path(path, "type")) {
        rows[i].default_value = schema::format_value(ModelConfig{}.hybrid_mixer.type);
        rows[i].meaning =
            "mixer of the blocks listed in model.hybrid_layers instead of model.mixer (docs/layers.md \"Per-layer "
            "mixers\"); sets the per-type defaults of the other rows";
      }
  };
  return k;
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
          hybrid_mixer_section(),
          key("hybrid_layers", &ModelConfig::hybrid_layers, at_least(0),
              "blocks whose mixer is hybrid_mixer instead of mixer (Zoology's Hybrid: [0] with 2 layers); each "
              "< n_layers, at most once"),
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

// Comma-separated glob list: empty, or non-empty items (no "a,,b", no leading/trailing comma).
Domain<std::string> glob_list_domain() {
  return {"comma-separated name globs ('*' any run, '?' one character)",
          [](const std::string& list) -> std::optional<std::string> {
            if (list.empty()) return std::nullopt;
            std::size_t start = 0;
            while (true) {
              const std::size_t comma = list.find(',', start);
              const std::size_t end = comma == std::string::npos ? list.size() : comma;
              if (end == start) return cat("empty pattern in '", list, "'");
              if (comma == std::string::npos) return std::nullopt;
              start = comma + 1;
            }
          }};
}

// optimizer.adam_patterns: one comma-separated string in YAML (so the canonical text and the hash
// are those of the string), a list of globs in the struct; the domain admits no empty item, so the
// string splits and joins back unchanged.
schema::Key<OptimizerConfig> adam_patterns_key(std::string doc) {
  const auto text_of = [](const OptimizerConfig& s) {
    std::string list;
    for (const std::string& p : s.adam_patterns) list += cat(list.empty() ? "" : ",", p);
    return schema::format_value(list);
  };
  const Domain<std::string> domain = glob_list_domain();
  schema::Key<OptimizerConfig> k;
  k.name = "adam_patterns";
  k.read = [domain](const YamlNode& node, OptimizerConfig& s, const std::string& path, schema::Reader& r) {
    std::string list;
    if (!schema::read_value(node, path, domain, list, r)) return false;
    s.adam_patterns.clear();
    for (std::size_t start = 0; start < list.size();) {
      const std::size_t end = std::min(list.find(',', start), list.size());
      s.adam_patterns.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    return true;
  };
  k.write = [text_of](const OptimizerConfig& s, const std::string& path, int depth, schema::Sink& out) {
    out.leaf(path, depth, "adam_patterns", text_of(s));
  };
  k.describe = [text_of, domain, doc](const std::string& path, const std::string& applies_text,
                                      const std::vector<std::pair<std::string, OptimizerConfig>>& type_defaults,
                                      std::vector<schema::DocRow>& rows) {
    rows.push_back(
        schema::doc_row<OptimizerConfig>(path, "string", text_of, domain.text, applies_text, doc, type_defaults));
  };
  return k;
}

const Table<OptimizerConfig>& optimizer_table() {
  static const Table<OptimizerConfig> table = typed_table<OptimizerConfig>(
      &OptimizerConfig::type, optimizer_types(), common_optimizer_keys(), &optimizer_defaults,
      "optimizer (docs/optimizers.md); sets the per-type defaults of the other rows",
      {
          key("lr", &OptimizerConfig::lr, above(0), "peak learning rate (before the schedule)"),
          key("weight_decay", &OptimizerConfig::weight_decay, real_at_least(0),
              "decoupled weight decay coefficient, applied as lr_t * weight_decay * W (muon, dct_adamw: their "
              "matrices; mfac: see wd_mode)"),
          key("beta1", &OptimizerConfig::beta1, real_range(0, 1, Upper::open),
              "first-moment EMA decay (of the AdamW part for muon)"),
          key("beta2", &OptimizerConfig::beta2, real_range(0, 1, Upper::open),
              "second-moment EMA decay (of the AdamW part for muon)"),
          key("eps", &OptimizerConfig::eps, real_at_least(0), "denominator epsilon (of the AdamW part for muon)"),
          choice("eps_mode", &OptimizerConfig::eps_mode,
                 "where eps enters: torch after bias correction, hf before (docs/derivations/adamw.md)"),
          key("decay_embeddings", &OptimizerConfig::decay_embeddings, any_bool(),
              "apply weight decay to the embedding (and tied head) weights"),
          adam_patterns_key(
              "comma-separated globs of parameter names sent to the AdamW part even when they are matrices"),
          key("adam_lr_ratio", &OptimizerConfig::adam_lr_ratio, above(0),
              "lr of the AdamW part (embedding, head, vectors, adam_patterns) = lr * adam_lr_ratio"),
          key("adam_weight_decay", &OptimizerConfig::adam_weight_decay, real_at_least(0),
              "weight decay of the AdamW part's head (and embedding if decay_embeddings, and adam_patterns "
              "matrices); vectors are never decayed"),
          key("momentum", &OptimizerConfig::momentum, real_range(0, 1, Upper::open),
              "EMA momentum of the update; 0: no momentum"),
          key("nesterov", &OptimizerConfig::nesterov, any_bool(), "Nesterov look-ahead: NS((1-mu) G + mu M)"),
          key("shard", &OptimizerConfig::shard, any_bool(),
              "with several ranks, muon, soap, dct_adamw: each matrix's state and update live on one owner rank "
              "(balanced by cost) and the updated matrix is broadcast; mfac: each rank keeps a contiguous column "
              "range of the window and updates it, then the parameters are all-gathered; false: every rank computes "
              "everything"),
          key("ns_steps", &OptimizerConfig::ns_steps, int_range(1, 100, "[1, 100]"), "Newton-Schulz iterations"),
          key("ns_eps", &OptimizerConfig::ns_eps, above(0), "Newton-Schulz normalization X / (|X|_F + ns_eps)"),
          choice("ns_coefficients", &OptimizerConfig::ns_coefficients,
                 "NS polynomial: keller_jordan (3.4445, -4.775, 2.0315) or classic_quintic (15/8, -10/8, 3/8)"),
          choice("ns_method", &OptimizerConfig::ns_method,
                 "gram: Gram Newton-Schulz (iterates on the r x r Gram matrix, restart before iteration 3) on "
                 "matrices with max(m, n) >= 2 min(m, n), standard NS on the others; standard: standard NS "
                 "everywhere (same result up to float rounding)"),
          choice("scale", &OptimizerConfig::scale,
                 "update scale: original sqrt(max(1, out/in)), moonlight 0.2 sqrt(max(out, in))"),
          key("shampoo_beta", &OptimizerConfig::shampoo_beta, real_range(-1, 1, Upper::open),
              "EMA decay of the L, R statistics; < 0 uses beta2"),
          key("precondition_frequency", &OptimizerConfig::precondition_frequency, at_least(1),
              "eigenbasis refresh every this many updates"),
          key("max_precond_dim", &OptimizerConfig::max_precond_dim, at_least(1),
              "an axis longer than this is not preconditioned (identity)"),
          key("merge_dims", &OptimizerConfig::merge_dims, any_bool(),
              "merge consecutive axes while the product stays <= max_precond_dim"),
          key("one_sided", &OptimizerConfig::one_sided, any_bool(), "precondition only the first eligible axis (rows)"),
          key("block_size", &OptimizerConfig::block_size, at_least(0),
              "soap: cut axes into blocks of this size; mfac: blocks of this many scalars; 0: no blocking"),
          key("window", &OptimizerConfig::window, at_least(1), "number of past gradients in the Fisher window"),
          key("damping", &OptimizerConfig::damping, above(0), "lambda of (lambda I + G^T G / window)^-1"),
          choice("wd_mode", &OptimizerConfig::wd_mode,
                 "coupled_l2: add weight_decay * W to the gradient; decoupled_lr_scaled: W *= 1 - lr * weight_decay"),
          key("rank", &OptimizerConfig::rank, at_least(1), "DCT columns kept per matrix (capped at min(out, in))"),
          key("refresh_every", &OptimizerConfig::refresh_every, at_least(1),
              "reselect the DCT columns at step 1 and every this many steps"),
          choice("on_refresh", &OptimizerConfig::on_refresh,
                 "moments on a refresh: keep slots as they are, or remap them to the surviving columns"),
      });
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

// A file path; empty means "off".
Domain<std::string> any_path() {
  return {"a file path (empty: off)", [](const std::string&) -> std::optional<std::string> { return std::nullopt; }};
}

const Table<TrainConfig>& train_table() {
  static const Table<TrainConfig> table{
      "",
      nullptr,
      {
          key("steps", &TrainConfig::steps, at_least(1), "optimizer steps"),
          key("batch_size", &TrainConfig::batch_size, at_least(1), "global batch in sequences, split over ranks"),
          key("ranks", &TrainConfig::ranks, at_least(1), "data-parallel ranks per trial; must divide batch_size"),
          key("deterministic", &TrainConfig::deterministic, any_bool(),
              "sum the gradients of fixed micro-shards in a fixed order: bit-identical results at 1, 2, 4 ranks "
              "(docs/distributed.md)"),
          key("eval_every", &TrainConfig::eval_every, at_least(1),
              "eval at every multiple of this step and at the last"),
          key("eval_batches", &TrainConfig::eval_batches, at_least(1), "batches per eval length"),
          key("checkpoint_every", &TrainConfig::checkpoint_every, at_least(0), "periodic checkpoint cadence; 0: none"),
          key("grad_clip", &TrainConfig::grad_clip, real_at_least(0), "global gradient-norm clip; 0: no clipping"),
          key("log_every", &TrainConfig::log_every, at_least(1), "console progress cadence in steps"),
          key("record_grad_trace", &TrainConfig::record_grad_trace, any_path(),
              "write the gradient trace (docs/trace-format.md) to this file; empty: none"),
          key("diagnostics_every", &TrainConfig::diagnostics_every, at_least(0),
              "per-matrix optimizer diagnostics every this many steps (docs/results-format.md); 0: off"),
          key("precision", &TrainConfig::precision, one_of({"fp32", "bf16"}),
              "operands of the projections, MLP and LM head: fp32, or bf16 rounded with fp32 accumulation, "
              "fp32 master weights and optimizer state (a CPU with avx512_bf16; docs/performance.md)"),
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

// Input files are checked with the config, before anything runs: "" when `pattern` (a file name,
// or a glob pattern as the data tasks expand it) names at least one existing file, else why not.
std::string missing_input(const std::string& pattern) {
  if (pattern.find_first_of("*?[") == std::string::npos) {
    std::error_code ec;
    if (std::filesystem::is_directory(pattern, ec)) return cat("'", pattern, "' is a directory, not a file");
    if (!std::filesystem::exists(pattern, ec)) return cat("file '", pattern, "' does not exist");
    return "";
  }
  glob_t matches{};
  const int status = ::glob(pattern.c_str(), 0, nullptr, &matches);
  const bool none = status != 0 || matches.gl_pathc == 0;
  ::globfree(&matches);
  return none ? cat("no file matches the pattern '", pattern, "'") : "";
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
             cat("warmup of ", schema::show(schedule.warmup), " steps exceeds train.steps (", str(train.steps), ")"));
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
  if (train.deterministic && all_valid(r, {"train.deterministic", "train.batch_size", "train.ranks"}) &&
      deterministic_micro_shards(train.batch_size) % train.ranks != 0) {
    conflict(r, {"train.ranks", "train.deterministic", "train.batch_size"}, file,
             cat("train.deterministic cuts train.batch_size ", str(train.batch_size), " into ",
                 str(deterministic_micro_shards(train.batch_size)), " micro-shard(s); train.ranks ", str(train.ranks),
                 " must be a power of two that divides that count"));
  }

  // The mixer's head split (its descriptor's sizing), when the keys it reads are valid.
  if (const MixerType* mixer = find_mixer_type(cfg.model.mixer.type);
      mixer != nullptr && mixer->sizing != nullptr && all_valid(r, mixer->sizing_keys)) {
    const MixerSizing sizing = mixer->sizing(cfg.model);
    if (const auto* problem = std::get_if<SizingConflict>(&sizing)) conflict(r, problem->keys, file, problem->message);
  }
  // Per-layer mixers (decision 143): the listed blocks exist, once each, and the hybrid mixer's
  // head split holds. The sizing reads `model.mixer`, so it runs on a copy whose mixer is the
  // hybrid one, and its key paths and message are renamed back.
  if (all_valid(r, {"model.hybrid_layers", "model.n_layers"})) {
    std::set<int> seen;
    for (std::size_t i = 0; i < cfg.model.hybrid_layers.size(); ++i) {
      const int layer = cfg.model.hybrid_layers[i];
      const std::string element = cat("model.hybrid_layers[", std::to_string(i), "]");
      if (layer >= cfg.model.n_layers)
        conflict(r, {element, "model.hybrid_layers", "model.n_layers"}, file,
                 cat("hybrid layer ", str(layer), " does not exist (model.n_layers is ", str(cfg.model.n_layers), ")"));
      else if (!seen.insert(layer).second)
        conflict(r, {element, "model.hybrid_layers"}, file, cat("hybrid layer ", str(layer), " is listed twice"));
    }
  }
  if (const MixerType* hybrid = find_mixer_type(cfg.model.hybrid_mixer.type);
      !cfg.model.hybrid_layers.empty() && hybrid != nullptr && hybrid->sizing != nullptr) {
    const auto renamed = [](std::string text) {
      const std::string from = "model.mixer.", to = "model.hybrid_mixer.";
      for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
      return text;
    };
    std::vector<std::string> keys;
    for (const std::string& k : hybrid->sizing_keys) keys.push_back(renamed(k));
    if (all_valid(r, keys)) {
      ModelConfig as_main = cfg.model;
      as_main.mixer = cfg.model.hybrid_mixer;
      const MixerSizing sizing = hybrid->sizing(as_main);
      if (const auto* problem = std::get_if<SizingConflict>(&sizing)) {
        std::vector<std::string> at;
        for (const std::string& k : problem->keys) at.push_back(renamed(k));
        conflict(r, at, file, renamed(problem->message));
      }
    }
  }

  const TaskConfig& task = cfg.task;
  if (all_valid(r, {"task.type", "task.seq_len", "task.eval_lengths"})) {
    // mqar and mod_arith sequences have an even length (key-value pairs; digit-operator pairs).
    const bool even_lengths = task.type == "mqar" || task.type == "mod_arith";
    if (even_lengths && task.seq_len % 2 != 0)
      conflict(r, {"task.seq_len"}, file,
               cat("task.seq_len ", str(task.seq_len), " must be even for task.type ", task.type));
    std::set<int> seen;
    for (std::size_t i = 0; i < task.eval_lengths.size(); ++i) {
      const int length = task.eval_lengths[i];
      const std::string element = cat("task.eval_lengths[", std::to_string(i), "]");
      if (length < task.seq_len) {
        conflict(r, {element, "task.seq_len"}, file,
                 cat("eval length ", str(length), " is shorter than task.seq_len (", str(task.seq_len), ")"));
      } else if (!seen.insert(length).second) {
        conflict(r, {element}, file, cat("eval length ", str(length), " is listed twice"));
      } else if (even_lengths && length % 2 != 0) {
        conflict(r, {element}, file, cat("eval length ", str(length), " must be even for task.type ", task.type));
      }
    }
  }
  if (task.type == "mqar" && all_valid(r, {"task.seq_len", "task.num_kv_pairs", "task.vocab_size"})) {
    const std::int64_t pairs = task.num_kv_pairs;
    if (4 * pairs > task.seq_len) {
      conflict(r, {"task.num_kv_pairs", "task.seq_len"}, file,
               cat("4 * task.num_kv_pairs = ", str(4 * pairs), " exceeds task.seq_len (", str(task.seq_len),
                   "): the pairs and one query slot per pair must fit"));
    } else if (pairs > task.vocab_size / 2 - 1) {
      conflict(r, {"task.num_kv_pairs", "task.vocab_size"}, file,
               cat("task.num_kv_pairs ", str(pairs), " exceeds the ", str(task.vocab_size / 2 - 1),
                   " distinct keys of task.vocab_size ", str(task.vocab_size), " (keys come from [1, V/2))"));
    }
  }
  if ((task.type == "parity" || task.type == "mod_arith") && all_valid(r, {"task.min_len", "task.seq_len"}) &&
      task.min_len > task.seq_len) {
    conflict(r, {"task.min_len", "task.seq_len"}, file,
             cat("task.min_len ", str(task.min_len), " exceeds task.seq_len (", str(task.seq_len), ")"));
  }
  if (task.type == "text" && all_valid(r, {"task.paths"}) && task.paths.empty())
    conflict(r, {"task.paths", "task.type"}, file, "task.type text needs at least one file in task.paths");
  if (task.type == "text" && all_valid(r, {"task.paths"}))
    for (const std::string& pattern : task.paths)
      if (const std::string problem = missing_input(pattern); !problem.empty())
        conflict(r, {"task.paths", "task.type"}, file, problem);
  if (task.type == "tokens") {
    for (const std::string p : {"task.train_path", "task.val_path"}) {
      const std::string& value = p == "task.train_path" ? task.train_path : task.val_path;
      if (all_valid(r, {p}) && value.empty()) conflict(r, {"task.type"}, file, cat("task.type tokens needs ", p));
      if (all_valid(r, {p}) && !value.empty())
        if (const std::string problem = missing_input(value); !problem.empty()) conflict(r, {p}, file, problem);
    }
  }
}

namespace {

// The leaves a table writes, without the `type` key.
class KeyCollector : public schema::Sink {
 public:
  std::vector<std::pair<std::string, std::string>> keys;
  void leaf(const std::string&, int, const std::string& name, const std::string& value) override {
    if (name != "type") keys.emplace_back(name, value);
  }
  void section(const std::string&, int, const std::string&) override {}
};

template <class S, class Descriptor>
std::vector<TypeKeys> type_keys(const Table<S>& table, const std::vector<Descriptor>& types,
                                S (*defaults_of)(const std::string&)) {
  std::vector<TypeKeys> out;
  for (const Descriptor& t : types) {
    KeyCollector collector;
    table.write(defaults_of(t.name), "", 0, collector);
    out.push_back(TypeKeys{t.name, std::move(collector.keys)});
  }
  return out;
}

}  // namespace

std::vector<TypeKeys> mixer_type_keys() { return type_keys(mixer_table(), mixer_types(), &mixer_defaults); }

std::vector<TypeKeys> optimizer_type_keys() {
  return type_keys(optimizer_table(), optimizer_types(), &optimizer_defaults);
}

}  // namespace expt::config
