// Shared checks for every optimizer: a least-squares problem whose loss must decrease, the
// save / load-into-a-fresh-optimizer / continue check that resume is bit-exact, and the count of
// allocations in step().
#pragma once

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "core/nn/parameter_store.hpp"
#include "core/util/random.hpp"
#include "optimizers/optimizer.hpp"
#include "tests/optimizers/allocation_counter.hpp"

namespace expt::test {

// Least squares with a fixed random design: minimise L = 1/(2N) Σ_s ‖W x_s + b − y_s‖² over
// W (out x in, role matrix), b (out, role vector), and a second matrix V (in x in, role matrix)
// applied first, x → W (V x) + b, so that the problem has two matrices of different shapes.
// Targets come from a planted model plus noise.
struct LeastSquares {
  static constexpr int in = 6, out = 4, samples = 32;
  nn::ParameterStore<float> store;
  std::vector<double> x, y;  // samples x in, samples x out

  explicit LeastSquares(std::uint64_t seed) {
    store.add("blocks.0.mixer.v_proj.weight", {in, in}, nn::ParamRole::matrix);
    store.add("blocks.0.mlp.up_proj.weight", {out, in}, nn::ParamRole::matrix);
    store.add("blocks.0.mlp.up_proj.bias", {out}, nn::ParamRole::vector);
    store.allocate();
    auto values = store.values();
    for (std::size_t k = 0; k < values.size(); ++k)
      values[k] = static_cast<float>(0.3 * rng::normal(seed, rng::Stream::test, 100, 0, k));
    x.resize(samples * in);
    y.resize(samples * out);
    for (std::size_t k = 0; k < x.size(); ++k) x[k] = rng::normal(seed, rng::Stream::test, 101, 0, k);
    for (int s = 0; s < samples; ++s)
      for (int o = 0; o < out; ++o) {
        double acc = 0.1 * rng::normal(seed, rng::Stream::test, 102, 0, s * out + o);
        for (int i = 0; i < in; ++i) acc += std::sin(1.0 + o + 2.0 * i) * x[s * in + i];
        y[s * out + o] = acc;
      }
  }

  // Loss at the current parameters; fills the gradients.
  double loss_and_grad() {
    const float* V = store.value(0);
    const float* W = store.value(1);
    const float* b = store.value(2);
    std::vector<double> gV(in * in, 0.0), gW(out * in, 0.0), gb(out, 0.0);
    double loss = 0.0;
    for (int s = 0; s < samples; ++s) {
      double h[in], r[out];
      for (int i = 0; i < in; ++i) {
        h[i] = 0;
        for (int j = 0; j < in; ++j) h[i] += V[i * in + j] * x[s * in + j];
      }
      for (int o = 0; o < out; ++o) {
        double p = b[o];
        for (int i = 0; i < in; ++i) p += W[o * in + i] * h[i];
        r[o] = p - y[s * out + o];
        loss += 0.5 * r[o] * r[o] / samples;
      }
      for (int o = 0; o < out; ++o) {
        gb[o] += r[o] / samples;
        for (int i = 0; i < in; ++i) gW[o * in + i] += r[o] * h[i] / samples;
      }
      for (int i = 0; i < in; ++i) {
        double dh = 0;
        for (int o = 0; o < out; ++o) dh += r[o] * W[o * in + i];
        for (int j = 0; j < in; ++j) gV[i * in + j] += dh * x[s * in + j] / samples;
      }
    }
    float* g = store.grads().data();
    std::size_t k = 0;
    for (double v : gV) g[k++] = static_cast<float>(v);
    for (double v : gW) g[k++] = static_cast<float>(v);
    for (double v : gb) g[k++] = static_cast<float>(v);
    return loss;
  }
};

// Runs `steps` steps at constant lr; returns the loss before each step and the final loss.
inline std::vector<double> run_least_squares(optim::Optimizer& opt, LeastSquares& problem, int steps, double lr) {
  std::vector<double> losses;
  auto refs = optim::param_refs(problem.store);
  for (int t = 1; t <= steps; ++t) {
    losses.push_back(problem.loss_and_grad());
    opt.step(refs, t, lr);
  }
  losses.push_back(problem.loss_and_grad());
  return losses;
}

// Runs `steps` steps at constant lr on `problem`; the losses must decrease at every step from the
// loss before step `monotone_from` + 1 on (earlier steps may go up: SOAP's first call only
// collects statistics) and end below half the first.
inline void check_least_squares_descent(optim::Optimizer& opt, LeastSquares& problem, int steps, double lr,
                                        std::size_t monotone_from = 1) {
  const auto losses = run_least_squares(opt, problem, steps, lr);
  for (std::size_t k = monotone_from; k < losses.size(); ++k) CHECK(losses[k] < losses[k - 1]);
  CHECK(losses.back() < 0.5 * losses.front());
}

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(const LeastSquares&)>;

// Operator-new calls made by steps 2..last_step of an optimizer made by `make` on a least-squares
// problem, after an uncounted step 1 (a first call may size buffers). Hot paths must make none.
inline long allocations_after_first_step(const MakeOptimizer& make, int last_step, double lr) {
  LeastSquares problem(5);
  auto opt = make(problem);
  auto refs = optim::param_refs(problem.store);
  problem.loss_and_grad();
  opt->step(refs, 1, lr);
  start_counting_allocations();
  for (int t = 2; t <= last_step; ++t) opt->step(refs, t, lr);
  return stop_counting_allocations();
}

// Trains `first` steps with one optimizer, saves its state and the parameters, loads both into a
// fresh optimizer and a fresh problem, and continues both for `second` steps. Returns true when the
// two parameter vectors are bitwise equal at the end.
inline bool resume_is_bit_exact(const MakeOptimizer& make, int first, int second, double lr) {
  LeastSquares a(3), b(3);
  auto opt_a = make(a);
  auto refs_a = optim::param_refs(a.store);
  for (int t = 1; t <= first; ++t) {
    a.loss_and_grad();
    opt_a->step(refs_a, t, lr);
  }
  const StateDict saved = opt_a->state();
  auto opt_b = make(b);
  opt_b->load_state(saved);
  std::memcpy(b.store.values().data(), a.store.values().data(), a.store.size() * sizeof(float));
  auto refs_b = optim::param_refs(b.store);
  for (int t = first + 1; t <= first + second; ++t) {
    a.loss_and_grad();
    opt_a->step(refs_a, t, lr);
    b.loss_and_grad();
    opt_b->step(refs_b, t, lr);
  }
  return std::memcmp(a.store.values().data(), b.store.values().data(), a.store.size() * sizeof(float)) == 0;
}

}  // namespace expt::test
