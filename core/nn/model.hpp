// The sequence model (docs/layers.md): Embedding(V, d) -> n_layers pre-norm blocks -> final RMSNorm ->
// LM head Linear(d, V), or the embedding matrix itself when tie_embeddings (then no head parameter
// exists and the embedding receives both gradients).
//
// Parameter names and order (PyTorch/FLA): embeddings.weight, blocks.<i>.* (see block.hpp),
// norm.weight, lm_head.weight. Activations are [B*L, d] row-major; forward caches every block input
// and backward walks the blocks in reverse (llm.c style, no tape). Each layer keeps the forward
// tensors its backward reads; the gradients at a layer's internal tensors live in one Workspace
// shared by all blocks, sized by the first backward (workspace.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/config/trial_config.hpp"
#include "core/nn/block.hpp"
#include "core/nn/embedding.hpp"
#include "core/nn/linear.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/nn/rmsnorm.hpp"
#include "core/nn/workspace.hpp"
#include "core/util/aligned_vector.hpp"

namespace expt::nn {

template <class T>
class Model {
 public:
  // Registers every parameter in `store` (store.allocate() is called by the caller afterwards).
  // Throws std::invalid_argument on an unsupported configuration (mixer/mlp type, init scheme,
  // heads not dividing d_model, odd head_dim, non-positive sizes).
  Model(const config::ModelConfig& cfg, int vocab_size, ParameterStore<T>& store);

  // After store.allocate(). Every Linear and Embedding weight element e of parameter p (store
  // index) is init_std * rng::normal(seed, Stream::init, p, 0, e); norm gains are 1. With
  // init == "rescale", o_proj and down_proj are additionally divided by sqrt(2 * n_layers). Then
  // each mixer sets its other parameters (Mixer::init_parameters: conv weights, biases, A_log,
  // dt_bias).
  void init_parameters(std::uint64_t seed);

  // inputs [B*L] token ids in [0, V). Returns logits [B*L, V] row-major, valid until the next
  // forward. Buffers grow to the largest (B, L) seen and are then reused without allocation.
  const T* forward(const std::int32_t* inputs, int B, int L);
  // Backward of the last forward from dlogits [B*L, V]; ADDS into the store's gradient buffer.
  // `on_ready(id)`, when given, is called each time every parameter with store id >= id holds its
  // final gradient: after the head and final norm, after each block (in reverse), after the
  // embedding. Data-parallel training starts reducing gradient buckets there while backward goes on.
  void backward(const T* dlogits, const std::function<void(std::size_t)>& on_ready = {});
  // The ids on_ready is called with, in backward order (strictly decreasing; the last is the
  // model's first parameter, the embedding).
  std::vector<std::size_t> ready_ids() const;

  int vocab_size() const { return vocab_; }
  std::int64_t n_params() const;           // every parameter this model registered
  std::int64_t n_params_nonembed() const;  // excluding embedding and LM head
  // Forward+backward FLOPs per token at the last forward's L:
  //   6 * (n_params_nonembed + V*d)   (every weight in a matmul; the head matmul exists tied or not)
  // + sum over blocks of Mixer::core_flops_per_token(L)   (the sequence-mixing core: for attention
  //                                    6 d (L + 1), causal QK^T and PV forward and backward)
  double flops_per_token() const;

  const Embedding<T>& embedding() const { return embed_; }
  const std::vector<Block<T>>& blocks() const { return blocks_; }
  const RMSNorm<T>& final_norm() const { return norm_; }
  const Linear<T>& head() const { return head_; }
  const Workspace<T>& workspace() const { return workspace_; }

 private:
  config::ModelConfig cfg_;
  int vocab_;
  ParameterStore<T>* store_;
  std::size_t first_param_;  // the model's parameters are store ids [first_param_, end_param_)
  Embedding<T> embed_;
  std::vector<Block<T>> blocks_;
  RMSNorm<T> norm_;
  Linear<T> head_;
  std::size_t end_param_;
  std::vector<std::size_t> block_first_param_;  // store id of each block's first parameter
  std::size_t norm_param_ = 0;                  // store id of norm.weight

  int batch_ = 0;
  int seq_len_ = 0;
  std::vector<std::int32_t> tokens_;  // [rows] copy of the inputs (the embedding backward needs them)
  util::AlignedVector<T> acts_;       // [(n_layers+1), rows, d]: input of block l at slot l, output last
  util::AlignedVector<T> normed_;     // [rows, d] final RMSNorm output
  util::AlignedVector<T> logits_;     // [rows, V]
  util::AlignedVector<T> grad_a_;     // [rows, d] backward ping-pong buffers
  util::AlignedVector<T> grad_b_;     // [rows, d]
  Workspace<T> workspace_;            // the blocks' backward scratch, shared (one block at a time)
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace expt::nn
