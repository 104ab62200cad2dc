// Random inputs for the delta-rule and DeltaProduct kernel tests, in the layouts of
// kernels/delta_rule.hpp and kernels/delta_product.hpp (steps = 1 is the plain delta rule), the
// results of a run, and the checks both tests make on them.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/delta_rule.hpp"
#include "tests/kernels/gradient_check.hpp"

namespace expt::test {

struct DeltaCase {
  int batch = 1;
  int seq_len = 1;
  int heads = 1;
  int key_dim = 1;
  int value_dim = 1;
  int steps = 1;                // Householder steps per token (n_h)
  double beta_max = 1;          // beta ~ U(0, beta_max)
  double gate_temperature = 0;  // g = logsigmoid(N(0,1)) / temperature; 0: no gate
  bool initial_state = true;

  std::size_t tokens() const { return static_cast<std::size_t>(batch) * seq_len * heads; }
  std::size_t state_size() const { return static_cast<std::size_t>(batch) * heads * key_dim * value_dim; }
  kernels::DeltaRuleShape shape() const { return {batch, seq_len * steps, heads, key_dim, value_dim}; }
};

template <class T>
struct DeltaTensors {
  std::vector<T> q, k, v, beta, g, s0;  // g, s0 empty when absent
  std::vector<T> dout, dfinal;          // upstream gradients of out and of the final state

  kernels::DeltaRuleInputs<T> inputs() const {
    return {
        q.data(), k.data(), v.data(), beta.data(), g.empty() ? nullptr : g.data(), s0.empty() ? nullptr : s0.data()};
  }
};

// Rows of `width` scaled to unit L2 norm, as the layers feed q and k.
inline void normalise_rows(std::vector<double>& x, int width) {
  for (std::size_t r = 0; r < x.size() / static_cast<std::size_t>(width); ++r) {
    double n = 0;
    for (int i = 0; i < width; ++i) n += x[r * width + i] * x[r * width + i];
    for (int i = 0; i < width; ++i) x[r * width + i] /= std::sqrt(n);
  }
}

inline DeltaTensors<double> make_delta_tensors(const DeltaCase& c, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0, 1);
  std::uniform_real_distribution<double> uniform(0, 1);
  auto fill = [&](std::size_t n) {
    std::vector<double> x(n);
    for (auto& e : x) e = normal(gen);
    return x;
  };
  const std::size_t rows = c.tokens(), virtual_rows = rows * c.steps;
  DeltaTensors<double> d;
  d.q = fill(rows * c.key_dim);
  normalise_rows(d.q, c.key_dim);
  d.k = fill(virtual_rows * c.key_dim);
  normalise_rows(d.k, c.key_dim);
  d.v = fill(virtual_rows * c.value_dim);
  d.beta.resize(virtual_rows);
  for (auto& b : d.beta) b = c.beta_max * uniform(gen);
  if (c.gate_temperature > 0) {
    d.g.resize(rows);
    for (auto& g : d.g) g = -std::log1p(std::exp(-normal(gen))) / c.gate_temperature;
  }
  if (c.initial_state) d.s0 = fill(c.state_size());
  d.dout = fill(rows * c.value_dim);
  d.dfinal = fill(c.state_size());
  return d;
}

template <class T>
std::vector<T> cast_vector(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}

template <class T>
DeltaTensors<T> cast_tensors(const DeltaTensors<double>& d) {
  return {cast_vector<T>(d.q), cast_vector<T>(d.k),  cast_vector<T>(d.v),    cast_vector<T>(d.beta),
          cast_vector<T>(d.g), cast_vector<T>(d.s0), cast_vector<T>(d.dout), cast_vector<T>(d.dfinal)};
}

// Forward outputs and every gradient of one run.
template <class T>
struct DeltaResults {
  std::vector<T> out, final_state, dq, dk, dv, dbeta, dg, ds0;

  DeltaResults(const DeltaCase& c, const DeltaTensors<T>& d)
      : out(c.tokens() * c.value_dim),
        final_state(c.state_size()),
        dq(d.q.size()),
        dk(d.k.size()),
        dv(d.v.size()),
        dbeta(d.beta.size()),
        dg(d.g.size()),
        ds0(c.state_size()) {}

  kernels::DeltaRuleGradients<T> gradients() {
    return {dq.data(), dk.data(), dv.data(), dbeta.data(), dg.empty() ? nullptr : dg.data(), ds0.data()};
  }
};

template <class T>
std::vector<double> to_double(const std::vector<T>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// a and b (named `what` in the failure message) are finite and within relative error tol.
inline void require_close(const std::string& what, const std::vector<double>& a, const std::vector<double>& b,
                          double tol) {
  INFO(what);
  REQUIRE(a.size() == b.size());
  bool finite = true;
  for (double x : a) finite = finite && std::isfinite(x);
  REQUIRE(finite);
  REQUIRE(relative_error(a, b) <= tol);
}

// Every output and gradient of two runs within relative error tol.
template <class A, class B>
void require_same_results(const DeltaResults<A>& a, const DeltaResults<B>& b, double tol) {
  require_close("out", to_double(a.out), to_double(b.out), tol);
  require_close("final state", to_double(a.final_state), to_double(b.final_state), tol);
  require_close("dq", to_double(a.dq), to_double(b.dq), tol);
  require_close("dk", to_double(a.dk), to_double(b.dk), tol);
  require_close("dv", to_double(a.dv), to_double(b.dv), tol);
  require_close("dbeta", to_double(a.dbeta), to_double(b.dbeta), tol);
  require_close("dg", to_double(a.dg), to_double(b.dg), tol);
  require_close("dinitial_state", to_double(a.ds0), to_double(b.ds0), tol);
}

// Every gradient of r against central differences of loss() over the inputs in d (which loss reads).
template <class Loss>
void require_gradients_match(const DeltaResults<double>& r, DeltaTensors<double>& d, Loss loss, double tol) {
  require_close("dq", r.dq, central_difference(d.q.data(), d.q.size(), loss), tol);
  require_close("dk", r.dk, central_difference(d.k.data(), d.k.size(), loss), tol);
  require_close("dv", r.dv, central_difference(d.v.data(), d.v.size(), loss), tol);
  require_close("dbeta", r.dbeta, central_difference(d.beta.data(), d.beta.size(), loss), tol);
  require_close("dg", r.dg, central_difference(d.g.data(), d.g.size(), loss), tol);
  require_close("dinitial_state", r.ds0, central_difference(d.s0.data(), d.s0.size(), loss), tol);
}

// Every output and gradient of run(inputs, dout, dfinal, out, final_state, gradients), a chunked
// forward and backward, on copies of d placed `offset` floats into their buffers, the outputs
// written at the same offset: only the alignment changes between two offsets, so the results of
// two offsets must be the same bits. Order: out, final state, dq, dk, dv, dbeta, dg, ds0.
template <class Run>
std::vector<std::vector<float>> run_at_offset(const DeltaCase& c, const DeltaTensors<float>& d, std::size_t offset,
                                              Run run) {
  const auto shift = static_cast<std::ptrdiff_t>(offset);
  const auto placed = [shift](const std::vector<float>& x) {
    std::vector<float> y(x.size() + static_cast<std::size_t>(shift), -1.0f);
    std::copy(x.begin(), x.end(), y.begin() + shift);
    return y;
  };
  DeltaTensors<float> s{placed(d.q), placed(d.k),  placed(d.v),    placed(d.beta),
                        placed(d.g), placed(d.s0), placed(d.dout), placed(d.dfinal)};
  DeltaResults<float> sized(c, d);
  std::vector<std::vector<float>> outs;
  for (const std::vector<float>* x :
       {&sized.out, &sized.final_state, &sized.dq, &sized.dk, &sized.dv, &sized.dbeta, &sized.dg, &sized.ds0})
    outs.push_back(placed(*x));
  const auto at = [shift](std::vector<float>& x, bool present) { return present ? x.data() + shift : nullptr; };
  const kernels::DeltaRuleInputs<float> in{at(s.q, true),    at(s.k, true),         at(s.v, true),
                                           at(s.beta, true), at(s.g, !d.g.empty()), at(s.s0, !d.s0.empty())};
  const kernels::DeltaRuleGradients<float> grads{at(outs[2], true), at(outs[3], true),         at(outs[4], true),
                                                 at(outs[5], true), at(outs[6], !d.g.empty()), at(outs[7], true)};
  run(in, at(s.dout, true), at(s.dfinal, true), at(outs[0], true), at(outs[1], true), grads);
  for (auto& x : outs) x.erase(x.begin(), x.begin() + shift);
  return outs;
}

// The runs of run_at_offset at offsets 1, 2, 3, 5 and 8 floats equal the run at offset 0 bit for bit.
template <class Run>
void require_same_bits_at_any_offset(const DeltaCase& c, const DeltaTensors<float>& d, Run run) {
  const char* names[] = {"out", "final state", "dq", "dk", "dv", "dbeta", "dg", "ds0"};
  const auto reference = run_at_offset(c, d, 0, run);
  for (std::size_t offset : {1u, 2u, 3u, 5u, 8u}) {
    const auto got = run_at_offset(c, d, offset, run);
    for (std::size_t part = 0; part < reference.size(); ++part) {
      INFO("offset " << offset << ", " << names[part]);
      REQUIRE(got[part].size() == reference[part].size());
      // (an empty part, e.g. ds0 without an initial state, has no data(): memcmp of null is UB)
      if (!got[part].empty())
        CHECK(std::memcmp(got[part].data(), reference[part].data(), got[part].size() * sizeof(float)) == 0);
    }
  }
}

}  // namespace expt::test
