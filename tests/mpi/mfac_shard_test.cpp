// Column-sharded M-FAC (docs/optimizers.md "Distributed") at 2, 3 and 4 ranks: each rank holds a
// contiguous column range of the window; the sharded IHVP equals the single-rank IHVP (up to the
// order of the Gram-row sums), the m x m factor and the parameters are bit-identical on every
// rank, and the state (a collective: every rank gets the full state) equals the single-rank state.
#include <mpi.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/comm/mpi_communicator.hpp"
#include "core/config/trial_config.hpp"
#include "core/nn/parameter_store.hpp"
#include "optimizers/mfac.hpp"
#include "optimizers/registry.hpp"

using expt::comm::MpiCommunicator;
using expt::optim::MfacWindow;

namespace {

std::vector<double> gaussian(std::size_t n, unsigned seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(0.0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// True when `local` is the same bytes on every rank.
template <class T>
bool same_on_every_rank(MpiCommunicator& comm, std::span<const T> local) {
  std::vector<char> all(local.size_bytes() * static_cast<std::size_t>(comm.size()));
  MPI_Allgather(local.data(), static_cast<int>(local.size_bytes()), MPI_BYTE, all.data(),
                static_cast<int>(local.size_bytes()), MPI_BYTE, MPI_COMM_WORLD);
  for (int r = 1; r < comm.size(); ++r)
    if (std::memcmp(all.data(), all.data() + r * local.size_bytes(), local.size_bytes()) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("column-sharded M-FAC IHVP equals the single-rank IHVP") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  const int m = 5;
  const std::size_t d = 37;  // uneven column ranges
  const double lambda = 1e-2;
  const std::size_t ranks = static_cast<std::size_t>(comm.size()), r = static_cast<std::size_t>(comm.rank());
  const std::size_t lo = d * r / ranks, hi = d * (r + 1) / ranks;
  MfacWindow<double> full(m, d, lambda), shard(m, hi - lo, lambda);
  for (int inserted = 1; inserted <= 3 * m + 1; ++inserted) {  // partial, full, wrapped three times
    const auto g = gaussian(d, 100u + static_cast<unsigned>(inserted), inserted % 2 ? 1.0 : 1e-2);
    std::vector<double> y_full(d), y_shard(hi - lo);
    full.insert_and_ihvp(g.data(), y_full.data());
    shard.insert_and_ihvp(g.data() + lo, y_shard.data(), &comm);
    const auto x = gaussian(d, 500u + static_cast<unsigned>(inserted));
    std::vector<double> z_full(d), z_shard(hi - lo);
    full.ihvp(x.data(), z_full.data());
    shard.ihvp(x.data() + lo, z_shard.data(), &comm);
    double worst = 0.0, scale = 0.0;
    for (std::size_t k = lo; k < hi; ++k) {
      worst = std::max({worst, std::abs(y_full[k] - y_shard[k - lo]), std::abs(z_full[k] - z_shard[k - lo])});
      scale = std::max({scale, std::abs(y_full[k]), std::abs(z_full[k])});
    }
    CHECK(worst <= 1e-10 * scale);
    CHECK(same_on_every_rank(comm, shard.factor()));
  }
}

TEST_CASE("sharded M-FAC optimizer: parameters identical on every rank, close to one rank, state gathered") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  for (int block : {0, 7}) {
    for (double momentum : {0.0, 0.9}) {
      auto make_store = [] {
        expt::nn::ParameterStore<float> store;
        store.add("blocks.0.mlp.up_proj.weight", {5, 4}, expt::nn::ParamRole::matrix);
        store.add("blocks.0.mlp.up_proj.bias", {5}, expt::nn::ParamRole::vector);
        store.add("blocks.0.mlp.down_proj.weight", {3, 5}, expt::nn::ParamRole::matrix);
        store.allocate();
        const auto init = gaussian(store.size(), 7, 0.1);
        for (std::size_t k = 0; k < store.size(); ++k) store.values()[k] = static_cast<float>(init[k]);
        return store;
      };
      auto sharded_store = make_store(), single_store = make_store();
      auto cfg = expt::config::optimizer_defaults("mfac");
      cfg.window = 4;
      cfg.damping = 1e-1;
      cfg.momentum = momentum;
      cfg.block_size = block;
      cfg.weight_decay = 0.0;  // the window then holds the raw gradients: bit-comparable states
      expt::optim::MFac sharded(cfg, sharded_store.params()), single(cfg, single_store.params());
      sharded.set_communicator(&comm);
      single.set_communicator(nullptr);
      CHECK(sharded.local_end() - sharded.local_begin() <= (sharded_store.size() + comm.size() - 1) / comm.size());
      auto sharded_refs = expt::optim::param_refs(sharded_store), single_refs = expt::optim::param_refs(single_store);
      const std::size_t d = sharded_store.size();
      for (int t = 1; t <= 11; ++t) {  // wraps the window twice
        const auto g = gaussian(d, 1000u + static_cast<unsigned>(t), 1e-2);
        for (std::size_t k = 0; k < d; ++k)
          sharded_store.grads()[k] = single_store.grads()[k] = static_cast<float>(g[k]);
        sharded.step(sharded_refs, t, 0.01);
        single.step(single_refs, t, 0.01);
        CHECK(same_on_every_rank(comm, std::span<const float>(sharded_store.values())));
      }
      double worst = 0.0, scale = 0.0;
      for (std::size_t k = 0; k < d; ++k) {
        worst = std::max(worst, static_cast<double>(std::abs(sharded_store.values()[k] - single_store.values()[k])));
        scale = std::max(scale, static_cast<double>(std::abs(single_store.values()[k])));
      }
      INFO("block " << block << " momentum " << momentum << " max diff " << worst);
      CHECK(worst <= 1e-5 * scale);

      const auto a = sharded.state(), b = single.state();  // every rank: the full state
      CHECK(a.entries().size() == b.entries().size());
      for (const auto& [key, entry] : b.entries()) {
        INFO(key);
        REQUIRE(a.contains(key));
        CHECK(a.entries().at(key).shape == entry.shape);
        if (key.ends_with("/G") || key.ends_with("slot") || key.ends_with("count"))
          CHECK(a.entries().at(key).data == entry.data);  // same gradients in the same slots
      }
    }
  }
}

TEST_CASE("sharded M-FAC continues from a single-rank state") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  // A state saved by one rank, loaded by every rank into a sharded optimizer (each keeps its
  // columns): three more steps stay within rounding of the single rank's, identical on every rank.
  expt::nn::ParameterStore<float> a, b;
  for (auto* s : {&a, &b}) {
    s->add("blocks.0.mlp.up_proj.weight", {6, 5}, expt::nn::ParamRole::matrix);
    s->allocate();
  }
  auto cfg = expt::config::optimizer_defaults("mfac");
  cfg.window = 3;
  cfg.damping = 1e-1;
  cfg.momentum = 0.5;
  expt::optim::MFac source(cfg, a.params());
  auto refs_a = expt::optim::param_refs(a);
  for (int t = 1; t <= 4; ++t) {
    const auto g = gaussian(a.size(), 50u + static_cast<unsigned>(t), 1e-2);
    for (std::size_t k = 0; k < a.size(); ++k) a.grads()[k] = static_cast<float>(g[k]);
    source.step(refs_a, t, 0.01);
  }
  const auto saved = source.state();
  std::copy(a.values().begin(), a.values().end(), b.values().begin());
  expt::optim::MFac sharded(cfg, b.params());
  sharded.set_communicator(&comm);
  sharded.load_state(saved);
  auto refs_b = expt::optim::param_refs(b);
  for (int t = 5; t <= 7; ++t) {
    const auto g = gaussian(a.size(), 50u + static_cast<unsigned>(t), 1e-2);
    for (std::size_t k = 0; k < a.size(); ++k) a.grads()[k] = b.grads()[k] = static_cast<float>(g[k]);
    source.step(refs_a, t, 0.01);
    sharded.step(refs_b, t, 0.01);
  }
  CHECK(same_on_every_rank(comm, std::span<const float>(b.values())));
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(b.values()[k] == Approx(a.values()[k]).epsilon(1e-5).margin(1e-7));
}
