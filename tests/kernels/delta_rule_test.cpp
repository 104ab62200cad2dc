// Delta rule kernels: the recurrent backward against central differences of the recurrent forward,
// the chunked WY/UT forward and backward against the recurrent ones (outputs, final state and every
// gradient, plain and gated, chunk sizes that do and do not divide the length), and closed forms.
#include "kernels/delta_rule.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tests/kernels/delta_inputs.hpp"
#include "tests/kernels/gradient_check.hpp"

using namespace expt::kernels;
using expt::test::DeltaCase;
using expt::test::DeltaResults;
using expt::test::DeltaTensors;
using expt::test::require_close;
using expt::test::require_same_results;

namespace {

template <class T>
T scale_of(const DeltaCase& c) {
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(c.key_dim)));
}

template <class T>
DeltaResults<T> run_recurrent(const DeltaCase& c, const DeltaTensors<T>& d) {
  DeltaResults<T> r(c, d);
  delta_rule_recurrent_forward(c.shape(), scale_of<T>(c), d.inputs(), r.out.data(), r.final_state.data());
  delta_rule_recurrent_backward(c.shape(), scale_of<T>(c), d.inputs(), d.dout.data(), d.dfinal.data(), r.gradients());
  return r;
}

template <class T>
DeltaResults<T> run_chunked(const DeltaCase& c, const DeltaTensors<T>& d, int chunk) {
  DeltaResults<T> r(c, d);
  delta_rule_chunked_forward(c.shape(), scale_of<T>(c), d.inputs(), r.out.data(), r.final_state.data(), chunk);
  delta_rule_chunked_backward(c.shape(), scale_of<T>(c), d.inputs(), d.dout.data(), d.dfinal.data(), r.gradients(),
                              chunk);
  return r;
}

// L = sum(out (.) dout) + sum(final (.) dfinal) by the recurrent forward, so that dL/dx is what the
// backward computes from (dout, dfinal).
double recurrent_loss(const DeltaCase& c, const DeltaTensors<double>& d) {
  std::vector<double> out(c.tokens() * c.value_dim), final_state(c.state_size());
  delta_rule_recurrent_forward(c.shape(), scale_of<double>(c), d.inputs(), out.data(), final_state.data());
  return expt::test::dot(out.data(), d.dout.data(), out.size()) +
         expt::test::dot(final_state.data(), d.dfinal.data(), final_state.size());
}

void check_recurrent_gradients(const DeltaCase& c) {
  auto d = expt::test::make_delta_tensors(c, 7);
  const auto r = run_recurrent(c, d);
  auto loss = [&] { return recurrent_loss(c, d); };
  expt::test::require_gradients_match(r, d, loss, 1e-7);
}

}  // namespace

TEST_CASE("delta rule recurrent backward matches central differences", "[delta_rule]") {
  SECTION("plain, beta in [0,1], two sequences") {
    check_recurrent_gradients({.batch = 2, .seq_len = 9, .heads = 2, .key_dim = 3, .value_dim = 4});
  }
  SECTION("gated, beta in [0,2], longer than one checkpoint segment") {
    check_recurrent_gradients(
        {.batch = 1, .seq_len = 70, .heads = 2, .key_dim = 3, .value_dim = 4, .beta_max = 2, .gate_temperature = 1});
  }
}

TEST_CASE("delta rule chunked equals recurrent in fp64", "[delta_rule]") {
  struct Variant {
    const char* name;
    double beta_max, gate_temperature;
  };
  const Variant variants[] = {{"plain, beta in [0,1]", 1, 0},
                              {"plain, beta in [0,2]", 2, 0},
                              {"gated tau=1, beta in [0,2]", 2, 1},
                              {"gated tau=0.1 (strong decay)", 1, 0.1},
                              {"gated tau=16 (weak decay)", 2, 16}};
  for (const auto& variant : variants)
    for (int seq_len : {1, 15, 63, 64, 65, 130})
      for (bool initial_state : {true, false}) {
        const DeltaCase c{.batch = 2,
                          .seq_len = seq_len,
                          .heads = 2,
                          .key_dim = 6,
                          .value_dim = 5,
                          .beta_max = variant.beta_max,
                          .gate_temperature = variant.gate_temperature,
                          .initial_state = initial_state};
        const auto d = expt::test::make_delta_tensors(c, 100 + static_cast<unsigned>(seq_len));
        const auto reference = run_recurrent(c, d);
        for (int chunk : {1, 5, 16, 64}) {
          INFO(variant.name << ", T = " << seq_len << ", C = " << chunk << ", initial state " << initial_state);
          require_same_results(run_chunked(c, d, chunk), reference, 1e-10);
        }
      }
}

TEST_CASE("delta rule chunked in fp32 matches the fp64 recurrence", "[delta_rule]") {
  for (double gate_temperature : {0.0, 1.0}) {
    const DeltaCase c{.batch = 2,
                      .seq_len = 200,
                      .heads = 2,
                      .key_dim = 16,
                      .value_dim = 16,
                      .beta_max = 2,
                      .gate_temperature = gate_temperature};
    const auto d = expt::test::make_delta_tensors(c, 11);
    const auto reference = run_recurrent(c, d);
    const auto d32 = expt::test::cast_tensors<float>(d);
    for (int chunk : {48, 64}) {
      INFO("gate temperature " << gate_temperature << ", C = " << chunk);
      require_same_results(run_chunked(c, d32, chunk), reference, 1e-4);
    }
    INFO("fp32 recurrent");
    require_same_results(run_recurrent(c, d32), reference, 1e-4);
  }
}

TEST_CASE("delta rule with a zero gate equals the ungated rule", "[delta_rule]") {
  const DeltaCase plain{.batch = 1, .seq_len = 37, .heads = 3, .key_dim = 4, .value_dim = 3, .beta_max = 2};
  DeltaCase gated = plain;
  gated.gate_temperature = 1;
  const auto d_plain = expt::test::make_delta_tensors(plain, 5);
  auto d_gated = d_plain;
  d_gated.g.assign(plain.tokens(), 0.0);
  for (int chunk : {8, 64}) {
    const auto a = run_chunked(plain, d_plain, chunk);
    auto b = run_chunked(gated, d_gated, chunk);
    b.dg.clear();  // the ungated run has no gate gradient
    require_same_results(a, b, 1e-13);
  }
}

TEST_CASE("delta rule gated backward without dg gives the same other gradients", "[delta_rule]") {
  // Without a gate gradient the chunked backward skips every dL/dgamma term; what remains must be
  // the same arithmetic, bit for bit, in fp32 and fp64.
  const DeltaCase c{
      .batch = 2, .seq_len = 70, .heads = 2, .key_dim = 16, .value_dim = 8, .beta_max = 2, .gate_temperature = 1};
  const auto d = expt::test::make_delta_tensors(c, 13);
  const auto check = [&](const auto& tensors) {
    for (int chunk : {16, 64}) {
      INFO("C = " << chunk);
      const auto with_dg = run_chunked(c, tensors, chunk);
      auto without_dg = with_dg;
      for (auto* g : {&without_dg.dq, &without_dg.dk, &without_dg.dv, &without_dg.dbeta, &without_dg.ds0})
        std::fill(g->begin(), g->end(),
                  std::numeric_limits<typename std::decay_t<decltype(*g)>::value_type>::quiet_NaN());
      auto grads = without_dg.gradients();
      grads.dg = nullptr;
      delta_rule_chunked_backward(c.shape(), scale_of<typename std::decay_t<decltype(tensors.q)>::value_type>(c),
                                  tensors.inputs(), tensors.dout.data(), tensors.dfinal.data(), grads, chunk);
      REQUIRE(without_dg.dq == with_dg.dq);
      REQUIRE(without_dg.dk == with_dg.dk);
      REQUIRE(without_dg.dv == with_dg.dv);
      REQUIRE(without_dg.dbeta == with_dg.dbeta);
      REQUIRE(without_dg.ds0 == with_dg.ds0);
    }
  };
  check(d);
  check(expt::test::cast_tensors<float>(d));
}

TEST_CASE("delta rule closed forms", "[delta_rule]") {
  SECTION("beta = 0 keeps the initial state: out = s S0^T q") {
    const DeltaCase c{.batch = 1, .seq_len = 20, .heads = 2, .key_dim = 4, .value_dim = 3};
    auto d = expt::test::make_delta_tensors(c, 9);
    d.beta.assign(d.beta.size(), 0.0);
    DeltaResults<double> r(c, d);
    delta_rule_chunked_forward(c.shape(), 0.5, d.inputs(), r.out.data(), r.final_state.data(), 8);
    REQUIRE(expt::test::relative_error(r.final_state, d.s0) == 0);
    for (int t = 0; t < c.seq_len; ++t)
      for (int h = 0; h < c.heads; ++h)
        for (int j = 0; j < c.value_dim; ++j) {
          double expected = 0;
          for (int i = 0; i < c.key_dim; ++i)
            expected += 0.5 * d.s0[(h * c.key_dim + i) * c.value_dim + j] * d.q[(t * c.heads + h) * c.key_dim + i];
          REQUIRE(std::abs(r.out[(t * c.heads + h) * c.value_dim + j] - expected) <= 1e-14);
        }
  }
  SECTION("orthonormal keys, beta = 1, S0 = 0: linear attention o_t = s sum_{i<=t} (q_t . k_i) v_i") {
    const DeltaCase c{.batch = 1, .seq_len = 8, .heads = 1, .key_dim = 8, .value_dim = 3, .initial_state = false};
    auto d = expt::test::make_delta_tensors(c, 10);
    const int order[8] = {3, 0, 7, 5, 1, 6, 2, 4};  // k_t = e_order[t]
    d.k.assign(d.k.size(), 0.0);
    for (int t = 0; t < 8; ++t) d.k[t * 8 + order[t]] = 1;
    d.beta.assign(d.beta.size(), 1.0);
    DeltaResults<double> r(c, d);
    const double s = 1.0 / std::sqrt(8.0);
    delta_rule_chunked_forward(c.shape(), s, d.inputs(), r.out.data(), r.final_state.data(), 3);
    for (int t = 0; t < 8; ++t)
      for (int j = 0; j < 3; ++j) {
        double expected = 0;
        for (int i = 0; i <= t; ++i) expected += s * d.q[t * 8 + order[i]] * d.v[i * 3 + j];
        REQUIRE(std::abs(r.out[t * 3 + j] - expected) <= 1e-14);
      }
  }
  SECTION("a repeated key with beta = 1 overwrites: S^T k = latest v") {
    const DeltaCase c{.batch = 1, .seq_len = 10, .heads = 1, .key_dim = 5, .value_dim = 4};
    auto d = expt::test::make_delta_tensors(c, 12);
    for (int t = 1; t < c.seq_len; ++t)
      for (int i = 0; i < c.key_dim; ++i) d.k[t * c.key_dim + i] = d.k[i];
    d.beta.assign(d.beta.size(), 1.0);
    DeltaResults<double> r(c, d);
    delta_rule_chunked_forward(c.shape(), 1.0, d.inputs(), r.out.data(), r.final_state.data(), 4);
    for (int j = 0; j < c.value_dim; ++j) {
      double read = 0;
      for (int i = 0; i < c.key_dim; ++i) read += r.final_state[i * c.value_dim + j] * d.k[i];
      REQUIRE(std::abs(read - d.v[(c.seq_len - 1) * c.value_dim + j]) <= 1e-13);
    }
  }
}

TEST_CASE("delta rule chunked forward and backward give the same bits at any buffer offset",
          "[delta_rule][determinism]") {
  // As the GLA test: inputs and outputs shifted by a few floats change only the alignment, so every
  // output and gradient must match bit for bit; lengths where the chunk boundaries fall at whole
  // chunks (64 = 2 x 32) and before a partial last chunk (77), plain and gated.
  std::uint64_t seed = 900;
  for (int seq_len : {64, 77})
    for (double temperature : {0.0, 4.0}) {
      DeltaCase c;
      c.batch = 2, c.seq_len = seq_len, c.heads = 2, c.key_dim = 20, c.value_dim = 12;
      c.gate_temperature = temperature;
      const DeltaTensors<float> d = expt::test::cast_tensors<float>(expt::test::make_delta_tensors(c, seed++));
      INFO("T=" << seq_len << " gate temperature " << temperature);
      expt::test::require_same_bits_at_any_offset(
          c, d, [&](const auto& in, const float* dout, const float* dfinal, float* out, float* fin, const auto& grads) {
            delta_rule_chunked_forward(c.shape(), scale_of<float>(c), in, out, fin, 32);
            delta_rule_chunked_backward(c.shape(), scale_of<float>(c), in, dout, dfinal, grads, 32);
          });
    }
}
