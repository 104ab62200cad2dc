// Data-parallel gradient reduction at 2, 3 and 4 ranks (ctest runs this program under mpirun):
// the overlapped bucketed allreduce equals the blocking reference, and the data-parallel gradient
// of a real model (each rank one slice of the global batch, buckets reduced while backward runs)
// equals the gradient one rank computes on the whole batch.
#include <mpi.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/comm/gradient_buckets.hpp"
#include "core/comm/mpi_communicator.hpp"
#include "core/config/trial_config.hpp"
#include "core/nn/cross_entropy.hpp"
#include "core/nn/model.hpp"
#include "core/nn/parameter_store.hpp"

using expt::comm::BucketedAllreduce;
using expt::comm::MpiCommunicator;
using expt::comm::ReductionMode;

namespace {

// Rank r's contribution: values in [0.5, 1.5) (no cancellation, so float sums in any order agree
// to a few ulps), reproducible on every rank from (r, i).
std::vector<float> rank_values(int r, std::size_t n) {
  std::mt19937 gen(1234u + static_cast<unsigned>(r));
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(gen);
  return v;
}

double max_relative_difference(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / std::max(std::abs(b[i]), 1e-30));
  return worst;
}

}  // namespace

TEST_CASE("bucketed overlapped allreduce equals the blocking reference and the exact sum") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  const std::size_t n = 100003;  // a prime: buckets of odd sizes
  // Ready offsets as backward would report them: from the end of the buffer down to 0.
  const std::vector<std::size_t> ready = {90000, 70001, 40000, 39999, 12, 0};
  for (std::size_t min_elements : {std::size_t{1}, std::size_t{20000}, std::size_t{1} << 20}) {
    const auto buckets = expt::comm::make_gradient_buckets(ready, n, min_elements);
    CHECK(buckets.front().end == n);
    CHECK(buckets.back().begin == 0);
    std::vector<float> overlapped = rank_values(comm.rank(), n);
    std::vector<float> blocking = overlapped;
    BucketedAllreduce over(comm, overlapped, buckets, ReductionMode::overlapped);
    BucketedAllreduce block(comm, blocking, buckets, ReductionMode::blocking);
    for (int step = 0; step < 2; ++step) {  // the same object serves step after step
      // Refill in place: the reducers hold spans of these buffers.
      const std::vector<float> fresh = rank_values(comm.rank(), n);
      std::copy(fresh.begin(), fresh.end(), overlapped.begin());
      std::copy(fresh.begin(), fresh.end(), blocking.begin());
      over.begin();
      for (std::size_t offset : ready) over.ready(offset);
      over.finish();
      block.begin();
      for (std::size_t offset : ready) block.ready(offset);
      block.finish();
    }
    std::vector<double> exact(n, 0.0);
    for (int r = 0; r < comm.size(); ++r) {
      const auto v = rank_values(r, n);
      for (std::size_t i = 0; i < n; ++i) exact[i] += v[i];
    }
    CHECK(max_relative_difference(overlapped, exact) < 1e-6);
    CHECK(max_relative_difference(blocking, exact) < 1e-6);
    if (comm.size() == 2) CHECK(overlapped == blocking);  // a + b == b + a exactly
    CHECK(over.times().steps == 2);
    CHECK(block.times().steps == 2);
  }
}

TEST_CASE("a backward that reports no boundary still reduces every bucket") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  const std::size_t n = 5000;
  const std::vector<std::size_t> ready = {4000, 2500, 0};
  std::vector<float> g(n, static_cast<float>(comm.rank() + 1));
  BucketedAllreduce over(comm, g, expt::comm::make_gradient_buckets(ready, n, 1), ReductionMode::overlapped);
  over.begin();
  over.finish();
  const float expected = static_cast<float>(comm.size() * (comm.size() + 1) / 2);
  CHECK(std::all_of(g.begin(), g.end(), [&](float x) { return x == expected; }));
}

TEST_CASE("data-parallel model gradients equal the single-rank gradient") {
  MpiCommunicator comm(MPI_COMM_WORLD);
  expt::config::ModelConfig cfg;
  cfg.d_model = 32;
  cfg.n_layers = 3;
  cfg.mixer.heads = 4;
  cfg.mlp.intermediate_size = 64;
  const int vocab = 11, L = 10;
  const int B = 12;               // divisible by 2, 3 and 4 ranks
  REQUIRE(B % comm.size() == 0);  // same on every rank: all fail together or none
  for (bool tied : {false, true}) {
    cfg.tie_embeddings = tied;
    expt::nn::ParameterStore<float> store;
    expt::nn::Model<float> model(cfg, vocab, store);
    store.allocate();
    model.init_parameters(7);

    // The global batch (same on every rank), some targets ignored.
    std::mt19937 gen(99);
    std::uniform_int_distribution<int> tok(0, vocab - 1);
    std::vector<std::int32_t> inputs(static_cast<std::size_t>(B) * L), targets(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      inputs[i] = tok(gen);
      targets[i] = i % 7 == 3 ? -100 : tok(gen);
    }
    std::int64_t n_labels = 0;
    for (auto t : targets) n_labels += t != -100;
    const float scale = 1.0f / static_cast<float>(n_labels);

    // Reference: one rank, the whole batch.
    std::vector<float> dlogits(inputs.size() * vocab);
    store.zero_grad();
    const float* logits = model.forward(inputs.data(), B, L);
    expt::nn::cross_entropy<float>(logits, targets.data(), B * L, vocab, -100, dlogits.data(), scale, nullptr);
    model.backward(dlogits.data());
    const std::vector<float> reference(store.grads().begin(), store.grads().end());

    // Data parallel: this rank's slice, buckets at the model's layer boundaries (small buckets,
    // so that several are in flight during backward), overlapped and blocking.
    std::vector<std::size_t> ready;
    for (std::size_t id : model.ready_ids()) ready.push_back(store.params()[id].offset);
    const auto buckets = expt::comm::make_gradient_buckets(ready, store.size(), 1);
    CHECK(buckets.size() == static_cast<std::size_t>(cfg.n_layers) + 2);
    const int local = B / comm.size();
    const std::size_t first = static_cast<std::size_t>(comm.rank()) * local * L;
    std::vector<std::vector<float>> results;
    for (ReductionMode mode : {ReductionMode::overlapped, ReductionMode::blocking}) {
      BucketedAllreduce reducer(comm, store.grads(), buckets, mode);
      store.zero_grad();
      const float* lg = model.forward(inputs.data() + first, local, L);
      expt::nn::cross_entropy<float>(lg, targets.data() + first, local * L, vocab, -100, dlogits.data(), scale,
                                     nullptr);
      reducer.begin();
      std::vector<std::size_t> seen;
      model.backward(dlogits.data(), [&](std::size_t id) {
        seen.push_back(id);
        reducer.ready(store.params()[id].offset);
      });
      reducer.finish();
      CHECK(seen == model.ready_ids());
      results.emplace_back(store.grads().begin(), store.grads().end());
    }
    double worst = 0, scale_max = 0;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      scale_max = std::max(scale_max, static_cast<double>(std::abs(reference[i])));
      for (const auto& r : results) worst = std::max(worst, static_cast<double>(std::abs(r[i] - reference[i])));
    }
    INFO("tied " << tied << ": max |data-parallel - single| = " << worst << ", max |g| = " << scale_max);
    CHECK(scale_max > 0);
    CHECK(worst <= 1e-5 * scale_max);
    if (comm.size() == 2) CHECK(results[0] == results[1]);
  }
}
