// GLA kernels: the recurrent reference against a naive linear attention (all gates 1) and central
// differences; the chunked forward/backward against the recurrent reference over chunk and
// sub-chunk sizes that do and do not divide the length, with strong and weak gates, in fp64 and fp32.
#include "kernels/gla.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/kernels/gradient_check.hpp"

using expt::kernels::GlaChunking;
using expt::kernels::GlaGradients;
using expt::kernels::GlaInputs;
using expt::kernels::GlaShape;

namespace {

std::size_t key_elems(const GlaShape& s) { return static_cast<std::size_t>(s.batch) * s.seq_len * s.heads * s.key_dim; }
std::size_t value_elems(const GlaShape& s) {
  return static_cast<std::size_t>(s.batch) * s.seq_len * s.heads * s.value_dim;
}
std::size_t state_elems(const GlaShape& s) {
  return static_cast<std::size_t>(s.batch) * s.heads * s.key_dim * s.value_dim;
}

// Random inputs in double; g = logsigmoid(u) / tau (<= 0; tau = 0.1 gives strong decay).
struct Problem {
  GlaShape shape;
  double scale = 0;
  std::vector<double> q, k, v, g, s0, dout, dfinal;
  bool with_initial_state = true;
  bool with_final_grad = true;
};

Problem make_problem(GlaShape shape, double tau, std::uint64_t seed, bool with_initial_state = true,
                     bool with_final_grad = true) {
  Problem p;
  p.shape = shape;
  p.scale = 1.0 / std::sqrt(static_cast<double>(shape.key_dim));
  p.q = expt::test::random_normal(key_elems(shape), seed + 1);
  p.k = expt::test::random_normal(key_elems(shape), seed + 2);
  p.v = expt::test::random_normal(value_elems(shape), seed + 3);
  p.g = expt::test::random_normal(key_elems(shape), seed + 4, 2.0);
  for (double& x : p.g) x = -std::log1p(std::exp(-x)) / tau;
  p.s0 = expt::test::random_normal(state_elems(shape), seed + 5);
  p.dout = expt::test::random_normal(value_elems(shape), seed + 6);
  p.dfinal = expt::test::random_normal(state_elems(shape), seed + 7);
  p.with_initial_state = with_initial_state;
  p.with_final_grad = with_final_grad;
  return p;
}

// Every output of forward + backward, converted to double: out, final state, dq, dk, dv, dg, dS0.
struct Result {
  std::vector<double> out, final_state, dq, dk, dv, dg, ds0;
};

template <class T>
std::vector<T> cast(const std::vector<double>& x) {
  return std::vector<T>(x.begin(), x.end());
}
template <class T>
std::vector<double> widen(const std::vector<T>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// chunking == nullptr runs the recurrent reference.
template <class T>
Result run(const Problem& p, const GlaChunking* chunking) {
  const GlaShape& s = p.shape;
  const auto q = cast<T>(p.q), k = cast<T>(p.k), v = cast<T>(p.v), g = cast<T>(p.g), s0 = cast<T>(p.s0);
  const auto dout = cast<T>(p.dout), dfinal = cast<T>(p.dfinal);
  GlaInputs<T> in{q.data(), k.data(), v.data(), g.data(), p.with_initial_state ? s0.data() : nullptr};
  std::vector<T> out(value_elems(s)), fin(state_elems(s)), dq(key_elems(s)), dk(key_elems(s)), dv(value_elems(s)),
      dg(key_elems(s)), ds0(state_elems(s));
  GlaGradients<T> grads{dq.data(), dk.data(), dv.data(), dg.data(), ds0.data()};
  const T* dfin = p.with_final_grad ? dfinal.data() : nullptr;
  const T scale = static_cast<T>(p.scale);
  if (chunking) {
    expt::kernels::gla_chunked_forward(s, scale, in, out.data(), fin.data(), *chunking);
    expt::kernels::gla_chunked_backward(s, scale, in, dout.data(), dfin, grads, *chunking);
  } else {
    expt::kernels::gla_recurrent_forward(s, scale, in, out.data(), fin.data());
    expt::kernels::gla_recurrent_backward(s, scale, in, dout.data(), dfin, grads);
  }
  return {widen(out), widen(fin), widen(dq), widen(dk), widen(dv), widen(dg), widen(ds0)};
}

void require_close(const Result& a, const Result& b, double tol) {
  const std::vector<std::pair<std::string, std::pair<const std::vector<double>*, const std::vector<double>*>>> parts = {
      {"out", {&a.out, &b.out}}, {"final_state", {&a.final_state, &b.final_state}},
      {"dq", {&a.dq, &b.dq}},    {"dk", {&a.dk, &b.dk}},
      {"dv", {&a.dv, &b.dv}},    {"dg", {&a.dg, &b.dg}},
      {"ds0", {&a.ds0, &b.ds0}}};
  for (const auto& [name, pair] : parts) {
    INFO(name);
    bool finite = true;
    for (double x : *pair.first) finite = finite && std::isfinite(x);
    REQUIRE(finite);
    REQUIRE(expt::test::relative_error(*pair.first, *pair.second) <= tol);
  }
}

}  // namespace

TEST_CASE("GLA with all gates 1 equals plain causal linear attention", "[gla]") {
  const GlaShape shape{2, 13, 2, 5, 3};
  Problem p = make_problem(shape, 1.0, 100);
  for (double& x : p.g) x = 0.0;
  // o_t = scale sum_{i <= t} (q_t . k_i) v_i + scale S0^T q_t;  S_final = S0 + sum_t k_t v_t^T.
  const int dk = shape.key_dim, dv = shape.value_dim, H = shape.heads;
  std::vector<double> expected_out(value_elems(shape), 0.0), expected_final = p.s0;
  for (int b = 0; b < shape.batch; ++b)
    for (int h = 0; h < H; ++h) {
      auto qk = [&](int t, int c) { return ((static_cast<std::size_t>(b) * shape.seq_len + t) * H + h) * dk + c; };
      auto vo = [&](int t, int c) { return ((static_cast<std::size_t>(b) * shape.seq_len + t) * H + h) * dv + c; };
      auto st = [&](int i, int j) { return ((static_cast<std::size_t>(b) * H + h) * dk + i) * dv + j; };
      for (int t = 0; t < shape.seq_len; ++t) {
        for (int i = 0; i <= t; ++i) {
          double dot = 0;
          for (int c = 0; c < dk; ++c) dot += p.q[qk(t, c)] * p.k[qk(i, c)];
          for (int c = 0; c < dv; ++c) expected_out[vo(t, c)] += p.scale * dot * p.v[vo(i, c)];
        }
        for (int i = 0; i < dk; ++i)
          for (int j = 0; j < dv; ++j) {
            expected_out[vo(t, j)] += p.scale * p.s0[st(i, j)] * p.q[qk(t, i)];
            expected_final[st(i, j)] += p.k[qk(t, i)] * p.v[vo(t, j)];
          }
      }
    }
  const Result recurrent = run<double>(p, nullptr);
  CHECK(expt::test::relative_error(recurrent.out, expected_out) < 1e-13);
  CHECK(expt::test::relative_error(recurrent.final_state, expected_final) < 1e-13);
  for (int chunk : {1, 4, 5, 64}) {
    const GlaChunking chunking{chunk, 2};
    const Result chunked = run<double>(p, &chunking);
    CHECK(expt::test::relative_error(chunked.out, expected_out) < 1e-13);
    CHECK(expt::test::relative_error(chunked.final_state, expected_final) < 1e-13);
  }
}

TEST_CASE("GLA recurrent backward matches central differences", "[gla]") {
  // Odd sizes catch layout bugs; loss = <dout, out> + <dfinal, final_state>.
  const GlaShape shape{2, 7, 2, 3, 4};
  Problem p = make_problem(shape, 1.0, 200);
  const Result analytic = run<double>(p, nullptr);
  std::vector<double> out(value_elems(shape)), fin(state_elems(shape));
  auto loss = [&] {
    GlaInputs<double> in{p.q.data(), p.k.data(), p.v.data(), p.g.data(), p.s0.data()};
    expt::kernels::gla_recurrent_forward(shape, p.scale, in, out.data(), fin.data());
    return expt::test::dot(out.data(), p.dout.data(), out.size()) +
           expt::test::dot(fin.data(), p.dfinal.data(), fin.size());
  };
  const double tol = 1e-7;
  CHECK(expt::test::relative_error(expt::test::central_difference(p.q.data(), p.q.size(), loss), analytic.dq) < tol);
  CHECK(expt::test::relative_error(expt::test::central_difference(p.k.data(), p.k.size(), loss), analytic.dk) < tol);
  CHECK(expt::test::relative_error(expt::test::central_difference(p.v.data(), p.v.size(), loss), analytic.dv) < tol);
  CHECK(expt::test::relative_error(expt::test::central_difference(p.g.data(), p.g.size(), loss), analytic.dg) < tol);
  CHECK(expt::test::relative_error(expt::test::central_difference(p.s0.data(), p.s0.size(), loss), analytic.ds0) < tol);
}

TEST_CASE("GLA chunked equals recurrent in fp64 over chunk and sub-chunk sizes", "[gla]") {
  std::uint64_t seed = 300;
  for (int seq_len : {1, 11, 37, 130})
    for (double tau : {0.1, 1.0, 16.0}) {
      const Problem p = make_problem(GlaShape{2, seq_len, 2, 5, 3}, tau, seed += 10);
      const Result reference = run<double>(p, nullptr);
      for (int chunk : {1, 3, 4, 11, 16, 64})
        for (int sub : {1, 4, 16, 64}) {
          if (sub > chunk && sub != 64) continue;
          INFO("T=" << seq_len << " tau=" << tau << " C=" << chunk << " c=" << sub);
          const GlaChunking chunking{chunk, sub};
          require_close(run<double>(p, &chunking), reference, 1e-10);
        }
    }
}

TEST_CASE("GLA chunked equals recurrent without initial state or final-state gradient", "[gla]") {
  for (bool with_s0 : {false, true})
    for (bool with_dfinal : {false, true}) {
      const Problem p = make_problem(GlaShape{1, 37, 3, 4, 6}, 1.0, 400, with_s0, with_dfinal);
      const GlaChunking chunking{16, 4};
      INFO("initial state " << with_s0 << ", final-state gradient " << with_dfinal);
      require_close(run<double>(p, &chunking), run<double>(p, nullptr), 1e-10);
    }
}

TEST_CASE("GLA chunked and recurrent in fp32 agree with the fp64 reference", "[gla]") {
  for (int seq_len : {37, 130})
    for (double tau : {0.1, 16.0}) {
      const Problem p = make_problem(GlaShape{2, seq_len, 2, 8, 8}, tau, 500 + static_cast<std::uint64_t>(seq_len));
      const Result reference = run<double>(p, nullptr);
      INFO("T=" << seq_len << " tau=" << tau);
      require_close(run<float>(p, nullptr), reference, 1e-4);
      for (int chunk : {3, 11, 64}) {
        const GlaChunking chunking{chunk, 16};
        INFO("C=" << chunk);
        require_close(run<float>(p, &chunking), reference, 1e-4);
      }
    }
}

TEST_CASE("GLA chunked stays finite and exact under gates strong enough to overflow exp(-b)", "[gla]") {
  // g around -50 per step: exp of minus a cumulative log-gate would overflow within a few steps in
  // fp32 and within ~15 in fp64; the chunked kernel only forms products of gates <= 1.
  Problem p = make_problem(GlaShape{1, 70, 1, 4, 4}, 0.02, 600);
  const Result reference = run<double>(p, nullptr);
  const GlaChunking chunking{64, 16};
  require_close(run<double>(p, &chunking), reference, 1e-10);
  require_close(run<float>(p, &chunking), reference, 1e-4);
}

TEST_CASE("GLA chunked equals recurrent in fp64 with whole and partial 16-channel key groups", "[gla]") {
  // key_dim 16 and 20 take the kernels' 16-lane paths (20: one whole group and a 4-channel tail);
  // sub-chunks of 32 and 64 give diagonal blocks of more than one 16-column group.
  std::uint64_t seed = 700;
  for (int key_dim : {16, 20})
    for (double tau : {0.1, 4.0}) {
      const Problem p = make_problem(GlaShape{2, 75, 2, key_dim, 3}, tau, seed += 10);
      const Result reference = run<double>(p, nullptr);
      for (int sub : {5, 16, 32, 64}) {
        INFO("d_k=" << key_dim << " tau=" << tau << " c=" << sub);
        const GlaChunking chunking{64, sub};
        require_close(run<double>(p, &chunking), reference, 1e-10);
      }
    }
}

TEST_CASE("GLA chunked forward and backward give the same bits at any buffer offset", "[gla][determinism]") {
  // The same inputs copied to buffers shifted by a few floats, outputs written to shifted buffers:
  // only the alignment changes, so every output must match bit for bit (docs/derivations/gla.md,
  // docs/decisions.md 44).
  const GlaShape s{2, 150, 2, 20, 32};
  const Problem p = make_problem(s, 1.0, 800);
  auto run_at = [&](std::size_t offset) {
    auto shifted = [offset](const std::vector<double>& x) {
      std::vector<float> y(x.size() + offset);
      std::copy(x.begin(), x.end(), y.begin() + static_cast<std::ptrdiff_t>(offset));
      return y;
    };
    const auto q = shifted(p.q), k = shifted(p.k), v = shifted(p.v), g = shifted(p.g), s0 = shifted(p.s0);
    const auto dout = shifted(p.dout), dfinal = shifted(p.dfinal);
    std::vector<float> out(value_elems(s) + offset), fin(state_elems(s) + offset), dq(key_elems(s) + offset),
        dk(key_elems(s) + offset), dv(value_elems(s) + offset), dg(key_elems(s) + offset), ds0(state_elems(s) + offset);
    GlaInputs<float> in{q.data() + offset, k.data() + offset, v.data() + offset, g.data() + offset, s0.data() + offset};
    GlaGradients<float> grads{dq.data() + offset, dk.data() + offset, dv.data() + offset, dg.data() + offset,
                              ds0.data() + offset};
    const GlaChunking chunking{64, 16};
    const float scale = static_cast<float>(p.scale);
    expt::kernels::gla_chunked_forward(s, scale, in, out.data() + offset, fin.data() + offset, chunking);
    expt::kernels::gla_chunked_backward(s, scale, in, dout.data() + offset, dfinal.data() + offset, grads, chunking);
    std::vector<std::vector<float>> all;
    for (const std::vector<float>* x : {&out, &fin, &dq, &dk, &dv, &dg, &ds0})
      all.emplace_back(x->begin() + static_cast<std::ptrdiff_t>(offset), x->end());
    return all;
  };
  const auto reference = run_at(0);
  for (std::size_t offset : {1u, 2u, 3u, 5u, 8u}) {
    const auto got = run_at(offset);
    for (std::size_t part = 0; part < reference.size(); ++part) {
      INFO("offset " << offset << ", output " << part);
      REQUIRE(got[part].size() == reference[part].size());
      CHECK(std::memcmp(got[part].data(), reference[part].data(), got[part].size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("GLA chunked gives the same bits at every vector width and equals recurrent at each", "[gla][determinism]") {
  // GlaChunking::vector_bytes 16, 32 and 64 force the SSE-, AVX2- and AVX-512-width code of the
  // element-wise parts (each runs on any x86-64: wider GCC vectors than the target are lowered);
  // 0 is the build target's own. A lane does the same operations at every width, so every output
  // must match bit for bit, in fp32 and fp64. key_dim 5, 16, 20 and 40: no whole 16-channel group,
  // one, one plus a tail, two plus a tail; sub-chunks of 5, 16 and 32 rows (diagonal blocks of a
  // partial part, one group, two groups); T = 75 ends on a partial chunk and sub-chunk.
  std::uint64_t seed = 900;
  auto same_bits = [](const Result& a, const Result& b) {
    const std::vector<std::pair<const std::vector<double>*, const std::vector<double>*>> parts = {
        {&a.out, &b.out}, {&a.final_state, &b.final_state},
        {&a.dq, &b.dq},   {&a.dk, &b.dk},
        {&a.dv, &b.dv},   {&a.dg, &b.dg},
        {&a.ds0, &b.ds0}};
    for (std::size_t i = 0; i < parts.size(); ++i) {
      INFO("output " << i);
      REQUIRE(parts[i].first->size() == parts[i].second->size());
      CHECK(std::memcmp(parts[i].first->data(), parts[i].second->data(), parts[i].first->size() * sizeof(double)) == 0);
    }
  };
  for (int key_dim : {5, 16, 20, 40})
    for (int sub : {5, 16, 32}) {
      const Problem p = make_problem(GlaShape{2, 75, 2, key_dim, 7}, 1.0, seed += 10);
      const Result reference = run<double>(p, nullptr);
      const GlaChunking target{64, sub, 0};
      const Result f32 = run<float>(p, &target), f64 = run<double>(p, &target);
      require_close(f64, reference, 1e-10);
      require_close(f32, reference, 1e-4);
      for (int bytes : {16, 32, 64}) {
        INFO("d_k=" << key_dim << " c=" << sub << " vector_bytes=" << bytes);
        const GlaChunking forced{64, sub, bytes};
        {
          INFO("fp32");
          same_bits(run<float>(p, &forced), f32);
        }
        {
          INFO("fp64");
          same_bits(run<double>(p, &forced), f64);
        }
      }
    }
  const Problem p = make_problem(GlaShape{1, 8, 1, 4, 4}, 1.0, 990);
  const GlaChunking bad{64, 16, 24};
  CHECK_THROWS_AS(run<float>(p, &bad), std::invalid_argument);
}
