#include "core/nn/model.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "core/util/allocation.hpp"
#include "core/util/random.hpp"

namespace expt::nn {

namespace {

const config::ModelConfig& checked(const config::ModelConfig& cfg, int vocab_size) {
  if (cfg.d_model <= 0 || cfg.n_layers <= 0)
    throw std::invalid_argument("model: d_model and n_layers must be positive");
  if (vocab_size <= 0) throw std::invalid_argument("model: vocab_size must be positive");
  if (cfg.init != "normal" && cfg.init != "rescale")
    throw std::invalid_argument("model: unknown init '" + cfg.init + "' (expected normal or rescale)");
  return cfg;
}

template <class T>
std::vector<Block<T>> make_blocks(ParameterStore<T>& store, const config::ModelConfig& cfg) {
  std::vector<Block<T>> blocks;
  blocks.reserve(static_cast<std::size_t>(cfg.n_layers));
  // Each block sees its own mixer as cfg.mixer (per-layer mixers, decision 143).
  for (int l = 0; l < cfg.n_layers; ++l)
    blocks.emplace_back(store, "blocks." + std::to_string(l) + ".", cfg.for_layer(l));
  return blocks;
}

template <class T>
Linear<T> make_head(ParameterStore<T>& store, const config::ModelConfig& cfg, int vocab_size,
                    const Embedding<T>& embed) {
  if (cfg.tie_embeddings) return Linear<T>(store, embed.weight_id(), cfg.d_model, vocab_size);
  return Linear<T>(store, "lm_head.weight", cfg.d_model, vocab_size, ParamRole::head);
}

}  // namespace

template <class T>
Model<T>::Model(const config::ModelConfig& cfg, int vocab_size, ParameterStore<T>& store)
    : cfg_(checked(cfg, vocab_size)),
      vocab_(vocab_size),
      store_(&store),
      first_param_(store.params().size()),
      embed_(store, "embeddings.weight", vocab_size, cfg.d_model),
      blocks_(make_blocks(store, cfg)),
      norm_(store, "norm.weight", cfg.d_model, cfg.norm_eps),
      head_(make_head(store, cfg, vocab_size, embed_)),
      end_param_(store.params().size()) {
  norm_param_ = store.find("norm.weight");
  // Blocks register their parameters one block after another, under "blocks.<l>.".
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    const std::string prefix = "blocks." + std::to_string(l) + ".";
    std::size_t id = first_param_;
    while (id < end_param_ && store.params()[id].name.compare(0, prefix.size(), prefix) != 0) ++id;
    if (id == end_param_) throw std::logic_error("model: block " + std::to_string(l) + " registered no parameter");
    block_first_param_.push_back(id);
  }
}

template <class T>
void Model<T>::init_parameters(std::uint64_t seed) {
  if (!store_->allocated()) throw std::logic_error("Model::init_parameters before ParameterStore::allocate");
  // Weights that feed the residual stream: scaled by 1/sqrt(2 n_layers) under "rescale" (GPT-2).
  std::vector<std::size_t> rescaled;
  if (cfg_.init == "rescale")
    for (const Block<T>& block : blocks_) {
      if (block.mixer())
        if (const std::optional<std::size_t> id = block.mixer()->output_weight_id()) rescaled.push_back(*id);
      if (block.mlp()) rescaled.push_back(block.mlp()->down_proj().weight_id());
    }
  const double rescale = 1.0 / std::sqrt(2.0 * cfg_.n_layers);
  for (std::size_t id = first_param_; id < end_param_; ++id) {
    const ParamInfo& info = store_->params()[id];
    T* w = store_->value(id);
    if (info.role == ParamRole::vector) {
      std::fill(w, w + info.size, T(1));
      continue;
    }
    double std_dev = cfg_.init_std;
    for (std::size_t r : rescaled)
      if (r == id) std_dev *= rescale;
    for (std::size_t e = 0; e < info.size; ++e)
      w[e] = static_cast<T>(std_dev * rng::normal(seed, rng::Stream::init, id, 0, e));
  }
  // Mixer parameters that start otherwise (conv weights, biases, A_log, dt_bias).
  for (Block<T>& block : blocks_)
    if (block.mixer()) block.mixer()->init_parameters(seed, cfg_.init_std);
}

template <class T>
const T* Model<T>::forward(const std::int32_t* inputs, int B, int L) {
  if (B <= 0 || L <= 0) throw std::invalid_argument("Model::forward: B and L must be positive");
  batch_ = B;
  seq_len_ = L;
  const int rows = B * L;
  const std::size_t act = static_cast<std::size_t>(rows) * cfg_.d_model;
  const int n_layers = static_cast<int>(blocks_.size());
  // The buffers grow to the largest (B, L) seen, here and in every layer's forward cache.
  util::allocating(
      "activations",
      [&] {
        return "the activations of a forward at batch " + std::to_string(B) + " x length " + std::to_string(L) +
               " (residual stream, logits and every layer's saved tensors)";
      },
      -1,
      [&] {
        tokens_.assign(inputs, inputs + rows);
        acts_.resize(act * (n_layers + 1));
        normed_.resize(act);
        logits_.resize(static_cast<std::size_t>(rows) * vocab_);
        embed_.forward(inputs, acts_.data(), rows);
        for (int l = 0; l < n_layers; ++l)
          blocks_[l].forward(acts_.data() + l * act, acts_.data() + (l + 1) * act, B, L);
      });
  norm_.forward(acts_.data() + n_layers * act, normed_.data(), rows);
  head_.forward(normed_.data(), logits_.data(), rows);
  return logits_.data();
}

template <class T>
std::vector<std::size_t> Model<T>::ready_ids() const {
  std::vector<std::size_t> ids;
  ids.push_back(norm_param_);  // the head (if untied) follows the norm
  for (std::size_t l = blocks_.size(); l-- > 0;) ids.push_back(block_first_param_[l]);
  ids.push_back(first_param_);
  return ids;
}

template <class T>
void Model<T>::backward(const T* dlogits, const std::function<void(std::size_t)>& on_ready) {
  if (batch_ == 0) throw std::logic_error("Model::backward without a forward");
  const int rows = batch_ * seq_len_;
  const std::size_t act = static_cast<std::size_t>(rows) * cfg_.d_model;
  const int n_layers = static_cast<int>(blocks_.size());
  grad_a_.resize(act);
  grad_b_.resize(act);
  // d(normed) = dlogits W_head; W_head gradient (or the tied embedding's) += dlogits^T normed.
  head_.backward(normed_.data(), dlogits, grad_a_.data(), rows, false);
  norm_.backward(acts_.data() + n_layers * act, grad_a_.data(), grad_b_.data(), rows);
  // With tied embeddings the head's gradient went into the embedding, which is not final yet; the
  // norm and everything after it are.
  if (on_ready) on_ready(norm_param_);
  T* dout = grad_b_.data();  // gradient at the output of block l
  T* din = grad_a_.data();   // gradient at its input
  for (int l = n_layers - 1; l >= 0; --l) {
    blocks_[l].backward(acts_.data() + l * act, dout, din, batch_, seq_len_, workspace_);
    std::swap(dout, din);
    if (on_ready) on_ready(block_first_param_[static_cast<std::size_t>(l)]);
  }
  embed_.backward(tokens_.data(), dout, rows);
  if (on_ready) on_ready(first_param_);
}

template <class T>
std::int64_t Model<T>::n_params() const {
  std::int64_t n = 0;
  for (std::size_t id = first_param_; id < end_param_; ++id) n += static_cast<std::int64_t>(store_->params()[id].size);
  return n;
}

template <class T>
std::int64_t Model<T>::n_params_nonembed() const {
  std::int64_t n = 0;
  for (std::size_t id = first_param_; id < end_param_; ++id) {
    const ParamInfo& info = store_->params()[id];
    if (info.role != ParamRole::embedding && info.role != ParamRole::head) n += static_cast<std::int64_t>(info.size);
  }
  return n;
}

template <class T>
double Model<T>::flops_per_token() const {
  const double d = cfg_.d_model;
  const double matmul_params = static_cast<double>(n_params_nonembed()) + static_cast<double>(vocab_) * d;
  double mixing = 0;
  if (seq_len_ > 0)
    for (const Block<T>& block : blocks_)
      if (block.mixer()) mixing += block.mixer()->core_flops_per_token(seq_len_);
  return 6.0 * matmul_params + mixing;
}

template class Model<float>;
template class Model<double>;

}  // namespace expt::nn
