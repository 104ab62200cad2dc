// DeltaProduct: against a naive per-token product of Householder matrices written out here
// (forward in fp64 and fp32, backward by central differences of that reference), n_h = 1 against
// the delta rule, a zero second beta against the delta rule on the first keys, and beta = 2
// reflections being orthogonal.
#include "kernels/delta_product.hpp"

#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/delta_rule.hpp"
#include "tests/kernels/delta_inputs.hpp"
#include "tests/kernels/gradient_check.hpp"

using namespace expt::kernels;
using expt::test::DeltaCase;
using expt::test::DeltaResults;
using expt::test::DeltaTensors;
using expt::test::require_close;
using expt::test::require_same_results;

namespace {

using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;

DeltaProductShape product_shape(const DeltaCase& c) {
  return {c.batch, c.seq_len, c.heads, c.key_dim, c.value_dim, c.steps};
}

double scale_of(const DeltaCase& c) { return 1.0 / std::sqrt(static_cast<double>(c.key_dim)); }

// The DeltaProduct recurrence by explicit matrices, per (batch, head) and token t:
//   A_t = a_t H_n ... H_1 with H_j = I - beta_j k_j k_j^T,   B_t = sum_j H_n ... H_{j+1} beta_j k_j v_j^T
//   S_t = A_t S_{t-1} + B_t,   o_t = s S_t^T q_t
void householder_reference(const DeltaCase& c, const DeltaTensors<double>& d, std::vector<double>& out,
                           std::vector<double>& final_state) {
  const int n = c.steps, dk = c.key_dim, dv = c.value_dim, H = c.heads;
  out.assign(c.tokens() * dv, 0.0);
  final_state.assign(c.state_size(), 0.0);
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < H; ++h) {
      Matrix S = Matrix::Zero(dk, dv);
      const std::size_t state = (static_cast<std::size_t>(b) * H + h) * dk * dv;
      if (!d.s0.empty())
        for (int i = 0; i < dk; ++i)
          for (int j = 0; j < dv; ++j) S(i, j) = d.s0[state + i * dv + j];
      for (int t = 0; t < c.seq_len; ++t) {
        const std::size_t token = static_cast<std::size_t>(b) * c.seq_len + t;
        Matrix A = Matrix::Identity(dk, dk), B = Matrix::Zero(dk, dv);
        for (int j = 0; j < n; ++j) {
          const std::size_t row = (token * n + j) * H + h;
          Vector k(dk), v(dv);
          for (int i = 0; i < dk; ++i) k(i) = d.k[row * dk + i];
          for (int i = 0; i < dv; ++i) v(i) = d.v[row * dv + i];
          const double beta = d.beta[row];
          const Matrix Hj = Matrix::Identity(dk, dk) - beta * k * k.transpose();
          A = Hj * A;
          B = Hj * B + beta * k * v.transpose();
        }
        const double a = d.g.empty() ? 1.0 : std::exp(d.g[token * H + h]);
        S = a * A * S + B;
        Vector q(dk);
        for (int i = 0; i < dk; ++i) q(i) = d.q[(token * H + h) * dk + i];
        const Vector o = scale_of(c) * S.transpose() * q;
        for (int i = 0; i < dv; ++i) out[(token * H + h) * dv + i] = o(i);
      }
      for (int i = 0; i < dk; ++i)
        for (int j = 0; j < dv; ++j) final_state[state + i * dv + j] = S(i, j);
    }
}

template <class T>
DeltaResults<T> run_product(const DeltaCase& c, const DeltaTensors<T>& d, int chunk) {
  DeltaResults<T> r(c, d);
  const T s = static_cast<T>(scale_of(c));
  delta_product_forward(product_shape(c), s, d.inputs(), r.out.data(), r.final_state.data(), chunk);
  delta_product_backward(product_shape(c), s, d.inputs(), d.dout.data(), d.dfinal.data(), r.gradients(), chunk);
  return r;
}

}  // namespace

TEST_CASE("DeltaProduct forward equals the naive product of Householder matrices", "[delta_product]") {
  for (int steps : {2, 3})
    for (double beta_max : {1.0, 2.0})
      for (double gate_temperature : {0.0, 1.0})
        for (int chunk : {4, 7, 64}) {
          const DeltaCase c{.batch = 2,
                            .seq_len = 23,
                            .heads = 2,
                            .key_dim = 5,
                            .value_dim = 3,
                            .steps = steps,
                            .beta_max = beta_max,
                            .gate_temperature = gate_temperature};
          INFO("n_h = " << steps << ", beta_max = " << beta_max << ", gate temperature " << gate_temperature
                        << ", C = " << chunk);
          const auto d = expt::test::make_delta_tensors(c, 21);
          std::vector<double> out, final_state;
          householder_reference(c, d, out, final_state);
          const auto r = run_product(c, d, chunk);
          require_close("out", r.out, out, 1e-10);
          require_close("final state", r.final_state, final_state, 1e-10);
          const auto r32 = run_product(c, expt::test::cast_tensors<float>(d), chunk);
          require_close("fp32 out", expt::test::to_double(r32.out), out, 1e-4);
          require_close("fp32 final state", expt::test::to_double(r32.final_state), final_state, 1e-4);
        }
}

TEST_CASE("DeltaProduct backward matches central differences of the Householder reference", "[delta_product]") {
  for (double beta_max : {1.0, 2.0}) {
    const DeltaCase c{.batch = 1,
                      .seq_len = 11,
                      .heads = 2,
                      .key_dim = 3,
                      .value_dim = 4,
                      .steps = 3,
                      .beta_max = beta_max,
                      .gate_temperature = 1};
    INFO("beta_max = " << beta_max);
    auto d = expt::test::make_delta_tensors(c, 31);
    const auto r = run_product(c, d, 8);  // chunks of 8 virtual steps cut through tokens
    auto loss = [&] {
      std::vector<double> out, final_state;
      householder_reference(c, d, out, final_state);
      return expt::test::dot(out.data(), d.dout.data(), out.size()) +
             expt::test::dot(final_state.data(), d.dfinal.data(), final_state.size());
    };
    expt::test::require_gradients_match(r, d, loss, 1e-7);
  }
}

template <class T>
DeltaResults<T> run_recurrent_product(const DeltaCase& c, const DeltaTensors<T>& d) {
  DeltaResults<T> r(c, d);
  const T s = static_cast<T>(scale_of(c));
  delta_product_recurrent_forward(product_shape(c), s, d.inputs(), r.out.data(), r.final_state.data());
  delta_product_recurrent_backward(product_shape(c), s, d.inputs(), d.dout.data(), d.dfinal.data(), r.gradients());
  return r;
}

TEST_CASE("DeltaProduct chunked equals its recurrent reference", "[delta_product]") {
  // Chunks shorter than a token (1, 2 with n_h = 3 have no query row), cutting through tokens (5,
  // 7), and one chunk for the whole sequence; with and without gate and initial state.
  for (int steps : {2, 3})
    for (double gate_temperature : {0.0, 1.0})
      for (bool initial_state : {true, false})
        for (int chunk : {1, 2, 5, 7, 64}) {
          const DeltaCase c{.batch = 2,
                            .seq_len = 13,
                            .heads = 2,
                            .key_dim = 5,
                            .value_dim = 4,
                            .steps = steps,
                            .beta_max = 2,
                            .gate_temperature = gate_temperature,
                            .initial_state = initial_state};
          INFO("n_h = " << steps << ", gate temperature " << gate_temperature << ", initial state " << initial_state
                        << ", C = " << chunk);
          const auto d = expt::test::make_delta_tensors(c, 71);
          require_same_results(run_product(c, d, chunk), run_recurrent_product(c, d), 1e-10);
        }
}

TEST_CASE("DeltaProduct chunked in fp32 matches the fp64 reference", "[delta_product]") {
  for (double gate_temperature : {0.0, 1.0})
    for (int chunk : {32, 64}) {
      const DeltaCase c{.batch = 2,
                        .seq_len = 100,
                        .heads = 2,
                        .key_dim = 16,
                        .value_dim = 16,
                        .steps = 2,
                        .beta_max = 2,
                        .gate_temperature = gate_temperature};
      INFO("gate temperature " << gate_temperature << ", C = " << chunk);
      const auto d = expt::test::make_delta_tensors(c, 81);
      require_same_results(run_product(c, expt::test::cast_tensors<float>(d), chunk), run_recurrent_product(c, d),
                           1e-4);
    }
}

TEST_CASE("DeltaProduct with one step equals DeltaNet", "[delta_product]") {
  for (double gate_temperature : {0.0, 1.0}) {
    const DeltaCase c{.batch = 2,
                      .seq_len = 30,
                      .heads = 3,
                      .key_dim = 4,
                      .value_dim = 5,
                      .steps = 1,
                      .beta_max = 2,
                      .gate_temperature = gate_temperature};
    const auto d = expt::test::make_delta_tensors(c, 41);
    const auto product = run_product(c, d, 16);
    DeltaResults<double> net(c, d);
    const double s = scale_of(c);
    delta_rule_recurrent_forward(c.shape(), s, d.inputs(), net.out.data(), net.final_state.data());
    delta_rule_recurrent_backward(c.shape(), s, d.inputs(), d.dout.data(), d.dfinal.data(), net.gradients());
    require_same_results(product, net, 1e-12);
  }
}

TEST_CASE("DeltaProduct with a zero second beta equals DeltaNet on the first keys", "[delta_product]") {
  const DeltaCase c{.batch = 1,
                    .seq_len = 19,
                    .heads = 2,
                    .key_dim = 4,
                    .value_dim = 3,
                    .steps = 2,
                    .beta_max = 2,
                    .gate_temperature = 1};
  auto d = expt::test::make_delta_tensors(c, 51);
  // Step 2 of every token: beta = 0, so its factor is I and it writes nothing.
  DeltaCase net_case = c;
  net_case.steps = 1;
  DeltaTensors<double> first = d;
  first.k.clear();
  first.v.clear();
  first.beta.clear();
  for (std::size_t row = 0; row < c.tokens() * 2; ++row) {
    const std::size_t step = (row / c.heads) % 2;  // rows are [batch, seq_len, step, heads]
    if (step == 1) {
      d.beta[row] = 0;
      continue;
    }
    first.k.insert(first.k.end(), d.k.begin() + row * c.key_dim, d.k.begin() + (row + 1) * c.key_dim);
    first.v.insert(first.v.end(), d.v.begin() + row * c.value_dim, d.v.begin() + (row + 1) * c.value_dim);
    first.beta.push_back(d.beta[row]);
  }
  const auto product = run_product(c, d, 8);
  DeltaResults<double> net(net_case, first);
  const double s = scale_of(c);
  delta_rule_recurrent_forward(net_case.shape(), s, first.inputs(), net.out.data(), net.final_state.data());
  require_close("out", product.out, net.out, 1e-12);
  require_close("final state", product.final_state, net.final_state, 1e-12);
}

TEST_CASE("DeltaProduct with beta = 2 and unit keys is an orthogonal transition", "[delta_product]") {
  // v = 0 and no gate: S_T = A_T ... A_1 S_0 with every A_t a product of reflections. Starting from
  // S_0 = I the final state must be orthogonal; with beta < 2 it must not be.
  const int dim = 4;
  for (double beta : {2.0, 1.5}) {
    const DeltaCase c{
        .batch = 1, .seq_len = 25, .heads = 1, .key_dim = dim, .value_dim = dim, .steps = 3, .beta_max = beta};
    auto d = expt::test::make_delta_tensors(c, 61);
    d.v.assign(d.v.size(), 0.0);
    d.beta.assign(d.beta.size(), beta);
    d.s0.assign(d.s0.size(), 0.0);
    for (int i = 0; i < dim; ++i) d.s0[i * dim + i] = 1;
    DeltaResults<double> r(c, d);
    delta_product_forward(product_shape(c), scale_of(c), d.inputs(), r.out.data(), r.final_state.data(), 16);
    const Eigen::Map<const Eigen::Matrix<double, dim, dim, Eigen::RowMajor>> S(r.final_state.data());
    const double defect = (S.transpose() * S - Eigen::Matrix4d::Identity()).norm();
    INFO("beta = " << beta << ", ||S^T S - I|| = " << defect);
    if (beta == 2.0)
      REQUIRE(defect <= 1e-12);
    else
      REQUIRE(defect > 0.1);
  }
}

TEST_CASE("DeltaProduct forward and backward give the same bits at any buffer offset", "[delta_product][determinism]") {
  // As the GLA and delta-rule tests: only the alignment of inputs and outputs changes, so every
  // output and gradient must match bit for bit; 2 and 3 Householder steps per token put the chunk
  // boundaries of the virtual sequence (chunk 32) between tokens and inside them, with whole and
  // partial last chunks, plain and gated.
  std::uint64_t seed = 950;
  for (int steps : {2, 3})
    for (int seq_len : {32, 45}) {
      DeltaCase c;
      c.batch = 2, c.seq_len = seq_len, c.heads = 2, c.key_dim = 20, c.value_dim = 12, c.steps = steps;
      c.gate_temperature = steps == 3 ? 4.0 : 0.0;
      const DeltaTensors<float> d = expt::test::cast_tensors<float>(expt::test::make_delta_tensors(c, seed++));
      INFO("n_h=" << steps << " T=" << seq_len);
      const float s = static_cast<float>(scale_of(c));
      expt::test::require_same_bits_at_any_offset(
          c, d, [&](const auto& in, const float* dout, const float* dfinal, float* out, float* fin, const auto& grads) {
            delta_product_forward(product_shape(c), s, in, out, fin, 32);
            delta_product_backward(product_shape(c), s, in, dout, dfinal, grads, 32);
          });
    }
}
