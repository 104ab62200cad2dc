// The shared backward scratch: stack discipline, alignment, sizing after the first round, and a
// model whose backward allocates nothing once every shape has been seen.
#include "core/nn/workspace.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/nn/model.hpp"

using expt::nn::Workspace;

namespace {

bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// One "backward": a caller buffer, then two callees one after the other, each with its own frame.
std::vector<float*> one_round(Workspace<float>& ws) {
  std::vector<float*> taken;
  const Workspace<float>::Frame outer(ws);
  taken.push_back(ws.take(100));
  {
    const Workspace<float>::Frame inner(ws);
    taken.push_back(ws.take(1000));
    taken.push_back(ws.take(10));
  }
  {
    const Workspace<float>::Frame inner(ws);
    taken.push_back(ws.take(500));
  }
  return taken;
}

}  // namespace

TEST_CASE("Workspace: frames release in stack order, sized once, then no allocation", "[nn][workspace]") {
  Workspace<float> ws;
  REQUIRE(ws.capacity() == 0);
  const auto first = one_round(ws);
  for (float* p : first) REQUIRE(aligned64(p));
  // 100, 1000, 10 rounded up to 16 floats (64 bytes): the deepest point is 112 + 1008 + 16.
  REQUIRE(ws.high_water() == 112 + 1008 + 16);
  REQUIRE(ws.allocations() == 4);  // everything overflowed the empty arena
  const auto second = one_round(ws);
  REQUIRE(ws.capacity() == 112 + 1008 + 16);
  REQUIRE(ws.allocations() == 5);  // the arena, once
  // In the arena: consecutive, and the second callee reuses the first callee's memory.
  REQUIRE(second[1] == second[0] + 112);
  REQUIRE(second[2] == second[1] + 1008);
  REQUIRE(second[3] == second[1]);
  for (float* p : second) REQUIRE(aligned64(p));
  const auto third = one_round(ws);
  REQUIRE(third == second);
  REQUIRE(ws.allocations() == 5);
  // Buffers are writable over their whole length (ASan checks the bounds).
  const Workspace<float>::Frame frame(ws);
  float* p = ws.take(2000);  // beyond the arena: a separate buffer
  for (int i = 0; i < 2000; ++i) p[i] = static_cast<float>(i);
  REQUIRE(p[1999] == 1999.0f);
  REQUIRE(ws.take(0) != nullptr);
}

TEST_CASE("Model: the backward scratch is shared by the blocks and sized by the first step", "[nn][model][workspace]") {
  expt::config::ModelConfig cfg;
  cfg.d_model = 16;
  cfg.n_layers = 3;
  cfg.mixer.type = "gla";
  cfg.mixer.heads = 2;
  cfg.mlp.intermediate_size = 40;
  const int vocab = 7, B = 2, L = 12;
  expt::nn::ParameterStore<float> store;
  expt::nn::Model<float> model(cfg, vocab, store);
  store.allocate();
  model.init_parameters(5);
  std::vector<std::int32_t> inputs(static_cast<std::size_t>(B) * L);
  for (std::size_t i = 0; i < inputs.size(); ++i) inputs[i] = static_cast<std::int32_t>((3 * i + 1) % vocab);
  const std::vector<float> dlogits(inputs.size() * vocab, 0.01f);
  model.forward(inputs.data(), B, L);
  model.backward(dlogits.data());
  const std::size_t after_first = model.workspace().allocations();
  // One block's scratch, not three: the block's dbranch and dh plus the larger of the SwiGLU's
  // 2 x [rows, I] and the mixer's buffers.
  const std::size_t rows = static_cast<std::size_t>(B) * L;
  REQUIRE(model.workspace().high_water() >= rows * (2 * 16 + 2 * 40));
  REQUIRE(model.workspace().high_water() < rows * 3 * (2 * 16 + 2 * 40));
  std::vector<float> grads_first(store.grads().begin(), store.grads().end());
  for (int step = 0; step < 3; ++step) {
    store.zero_grad();
    model.forward(inputs.data(), B, L);
    model.backward(dlogits.data());
    // Reused memory gives the same gradients bit for bit.
    REQUIRE(std::vector<float>(store.grads().begin(), store.grads().end()) == grads_first);
  }
  REQUIRE(model.workspace().allocations() == after_first);
}
