// Sharded Muon, SOAP and DCT-AdamW at 2, 3 and 4 ranks (docs/optimizers.md "Distributed",
// optimizers/matrix_ownership.hpp): with optimizer.shard every matrix is updated by its owner
// rank only and broadcast. After every step the parameters on every rank equal, bit for bit, those
// of the same optimizer run unsharded on this rank; the gathered state() equals the unsharded
// state; and a sharded optimizer that loads a checkpoint of the unsharded one mid-run continues
// bit-identically (a checkpoint does not depend on the rank count).
#include <mpi.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "core/comm/mpi_communicator.hpp"
#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "core/util/random.hpp"
#include "optimizers/optimizer.hpp"

using expt::comm::MpiCommunicator;
using expt::nn::ParameterStore;
using expt::nn::ParamRole;
using expt::optim::make_optimizer;
using expt::optim::param_refs;

namespace {

// A model-like parameter set: embedding, head, vectors, and matrices of six shapes (tall, wide,
// square, one with an axis above SOAP's max_precond_dim) so that every rank owns some matrices.
void add_params(ParameterStore<float>& store) {
  store.add("embed.weight", {11, 8}, ParamRole::embedding);
  const std::vector<std::pair<int, int>> shapes = {{8, 8}, {24, 8}, {8, 24}, {16, 16}, {12, 8}, {8, 40}};
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    store.add("blocks." + std::to_string(k) + ".mlp.up_proj.weight", {shapes[k].first, shapes[k].second},
              ParamRole::matrix);
    store.add("blocks." + std::to_string(k) + ".norm.weight", {shapes[k].first}, ParamRole::vector);
  }
  store.add("head.weight", {11, 8}, ParamRole::head);
  store.allocate();
  for (std::size_t e = 0; e < store.size(); ++e)
    store.values()[e] = static_cast<float>(0.1 * expt::rng::normal(7, expt::rng::Stream::test, 70, 0, e));
}

// The (already reduced) gradient of step t: the same on every rank.
void set_grads(ParameterStore<float>& store, std::int64_t t) {
  for (std::size_t e = 0; e < store.size(); ++e)
    store.grads()[e] =
        static_cast<float>(expt::rng::normal(7, expt::rng::Stream::test, 71, static_cast<std::uint64_t>(t), e));
}

expt::config::OptimizerConfig config_for(const std::string& type) {
  auto cfg = expt::config::optimizer_defaults(type);
  cfg.lr = 0.01;
  cfg.weight_decay = 0.1;
  if (type == "soap") {
    cfg.precondition_frequency = 2;  // refreshes at t = 2, 4, ...
    cfg.max_precond_dim = 32;        // the 8 x 40 matrix keeps only its left side
  }
  if (type == "dct_adamw") {
    cfg.rank = 4;
    cfg.refresh_every = 3;
    cfg.on_refresh = expt::config::OnRefresh::remap;
  }
  return cfg;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every entry of `a` equals `b`'s bit for bit (floats, doubles, ints and scalars).
bool same_state(const expt::StateDict& a, const expt::StateDict& b) {
  if (a.entries().size() != b.entries().size()) return false;
  for (const auto& [key, entry] : b.entries()) {
    if (!a.contains(key)) return false;
    const auto& other = a.entries().at(key);
    if (other.data.index() != entry.data.index()) return false;
    bool equal = true;
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          const T& y = std::get<T>(other.data);
          if constexpr (std::is_same_v<T, std::vector<float>> || std::is_same_v<T, std::vector<double>>)
            equal = x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(x[0])) == 0;
          else
            equal = x == y;
        },
        entry.data);
    if (!equal) return false;
  }
  return true;
}

// The smallest parameter vector over the ranks equals the largest: all ranks agree.
bool ranks_agree(std::span<const float> values) {
  std::vector<float> root(values.begin(), values.end());
  MPI_Bcast(root.data(), static_cast<int>(root.size()), MPI_FLOAT, 0, MPI_COMM_WORLD);
  int same = same_bits(root, values) ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return same == 1;
}

}  // namespace

TEST_CASE("sharded Muon, SOAP and DCT-AdamW equal the unsharded optimizer bit for bit") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  for (const std::string type : {"muon", "soap", "dct_adamw"}) {
    INFO(type << " at " << comm.size() << " ranks, rank " << comm.rank());
    ParameterStore<float> sharded_store, plain_store, resumed_store;
    for (auto* s : {&sharded_store, &plain_store, &resumed_store}) add_params(*s);
    const auto cfg = config_for(type);
    auto sharded = make_optimizer(cfg, sharded_store.params());
    auto plain = make_optimizer(cfg, plain_store.params());
    auto resumed = make_optimizer(cfg, resumed_store.params());
    sharded->set_communicator(&comm);
    resumed->set_communicator(&comm);
    auto sharded_refs = param_refs(sharded_store), plain_refs = param_refs(plain_store),
         resumed_refs = param_refs(resumed_store);
    constexpr std::int64_t kSteps = 7, kResumeAfter = 3;
    for (std::int64_t t = 1; t <= kSteps; ++t) {
      const double lr = 0.01 * (1.0 - 0.05 * static_cast<double>(t));
      for (auto* s : {&sharded_store, &plain_store, &resumed_store}) set_grads(*s, t);
      sharded->step(sharded_refs, t, lr);
      plain->step(plain_refs, t, lr);
      if (t > kResumeAfter) resumed->step(resumed_refs, t, lr);
      if (t == kResumeAfter) {
        // A checkpoint of the unsharded run, loaded by a sharded optimizer on every rank.
        resumed->load_state(plain->state());
        std::copy(plain_store.values().begin(), plain_store.values().end(), resumed_store.values().begin());
      }
      INFO("step " << t);
      CHECK(same_bits(sharded_store.values(), plain_store.values()));
      CHECK(ranks_agree(sharded_store.values()));
      if (t >= kResumeAfter) CHECK(same_bits(resumed_store.values(), plain_store.values()));
    }
    // state() is a collective gathering every owner's entries: the unsharded state on every rank.
    CHECK(same_state(sharded->state(), plain->state()));
    CHECK(same_state(resumed->state(), plain->state()));
  }
}
