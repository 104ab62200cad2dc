// Causal softmax attention reference kernel: forward against a naive per-position loop written
// here, backward against central differences, fp32 robustness with large scores.
#include "kernels/attention.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <vector>

#include "tests/kernels/gradient_check.hpp"

using expt::kernels::AttentionShape;

namespace {

std::size_t elems(const AttentionShape& s) {
  return static_cast<std::size_t>(s.batch) * s.seq_len * s.heads * s.head_dim;
}

// Element (b, t, h, c) of a [batch, seq_len, heads, head_dim] buffer.
std::size_t at(const AttentionShape& s, int b, int t, int h, int c) {
  return ((static_cast<std::size_t>(b) * s.seq_len + t) * s.heads + h) * s.head_dim + c;
}

// For every query position i separately: scores over j <= i, softmax, weighted sum of values.
void naive_attention(const AttentionShape& s, double scale, const std::vector<double>& q, const std::vector<double>& k,
                     const std::vector<double>& v, std::vector<double>& o, std::vector<double>& lse) {
  o.assign(elems(s), 0.0);
  lse.assign(static_cast<std::size_t>(s.batch) * s.heads * s.seq_len, 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int i = 0; i < s.seq_len; ++i) {
        std::vector<double> score(i + 1);
        for (int j = 0; j <= i; ++j) {
          double acc = 0;
          for (int c = 0; c < s.head_dim; ++c) acc += q[at(s, b, i, h, c)] * k[at(s, b, j, h, c)];
          score[j] = scale * acc;
        }
        // softmax with the largest score subtracted (the test below uses scores beyond exp's range)
        double top = score[0];
        for (int j = 1; j <= i; ++j) top = std::max(top, score[j]);
        double denom = 0;
        for (int j = 0; j <= i; ++j) denom += std::exp(score[j] - top);
        for (int j = 0; j <= i; ++j)
          for (int c = 0; c < s.head_dim; ++c)
            o[at(s, b, i, h, c)] += std::exp(score[j] - top) / denom * v[at(s, b, j, h, c)];
        lse[(static_cast<std::size_t>(b) * s.heads + h) * s.seq_len + i] = top + std::log(denom);
      }
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST_CASE("attention_reference_forward equals a naive per-position loop", "[attention]") {
  for (const AttentionShape s : {AttentionShape{2, 7, 3, 4}, AttentionShape{1, 1, 2, 3}, AttentionShape{3, 5, 1, 5}}) {
    INFO("B " << s.batch << " T " << s.seq_len << " H " << s.heads << " D " << s.head_dim);
    const auto q = expt::test::random_normal(elems(s), 11), k = expt::test::random_normal(elems(s), 12),
               v = expt::test::random_normal(elems(s), 13);
    const double scale = 1.0 / std::sqrt(s.head_dim);
    std::vector<double> o_ref, lse_ref;
    naive_attention(s, scale, q, k, v, o_ref, lse_ref);

    std::vector<double> o(elems(s)), lse(lse_ref.size()),
        work(expt::kernels::attention_reference_workspace_size(s.seq_len));
    expt::kernels::attention_reference_forward(s, scale, q.data(), k.data(), v.data(), o.data(), lse.data(),
                                               work.data());
    REQUIRE(max_abs_diff(o, o_ref) < 1e-12);
    REQUIRE(max_abs_diff(lse, lse_ref) < 1e-12);

    // float kernel against the double naive loop
    std::vector<float> qf(q.begin(), q.end()), kf(k.begin(), k.end()), vf(v.begin(), v.end()), of(o.size()),
        lsef(lse.size()), workf(work.size());
    expt::kernels::attention_reference_forward(s, static_cast<float>(scale), qf.data(), kf.data(), vf.data(), of.data(),
                                               lsef.data(), workf.data());
    for (std::size_t i = 0; i < o.size(); ++i) REQUIRE(std::abs(of[i] - o_ref[i]) < 1e-5);
  }
}

TEST_CASE("attention_reference_forward: the first position attends only to itself", "[attention]") {
  const AttentionShape s{1, 4, 2, 3};
  const auto q = expt::test::random_normal(elems(s), 1), k = expt::test::random_normal(elems(s), 2),
             v = expt::test::random_normal(elems(s), 3);
  std::vector<double> o(elems(s)), lse(8), work(expt::kernels::attention_reference_workspace_size(4));
  expt::kernels::attention_reference_forward(s, 0.5, q.data(), k.data(), v.data(), o.data(), lse.data(), work.data());
  for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 3; ++c) REQUIRE(o[at(s, 0, 0, h, c)] == Approx(v[at(s, 0, 0, h, c)]).epsilon(1e-14));
}

TEST_CASE("attention_reference_forward in float stays finite with large scores", "[attention]") {
  // Scores of order 1e3: exp without the max subtraction would overflow (float and double).
  const AttentionShape s{1, 6, 2, 4};
  const auto qd = expt::test::random_normal(elems(s), 21, 30.0), kd = expt::test::random_normal(elems(s), 22, 30.0),
             vd = expt::test::random_normal(elems(s), 23);
  const double scale = 0.5;
  std::vector<double> o_ref, lse_ref;
  naive_attention(s, scale, qd, kd, vd, o_ref, lse_ref);
  std::vector<float> q(qd.begin(), qd.end()), k(kd.begin(), kd.end()), v(vd.begin(), vd.end()), o(elems(s)), lse(12),
      work(expt::kernels::attention_reference_workspace_size(6));
  expt::kernels::attention_reference_forward(s, 0.5f, q.data(), k.data(), v.data(), o.data(), lse.data(), work.data());
  for (std::size_t i = 0; i < o.size(); ++i) {
    REQUIRE(std::isfinite(o[i]));
    REQUIRE(std::abs(o[i] - o_ref[i]) < 1e-3);
  }
}

TEST_CASE("attention_reference_backward matches central differences", "[attention][gradcheck]") {
  for (const AttentionShape s : {AttentionShape{2, 5, 2, 3}, AttentionShape{1, 1, 1, 2}, AttentionShape{1, 6, 3, 4}}) {
    INFO("B " << s.batch << " T " << s.seq_len << " H " << s.heads << " D " << s.head_dim);
    auto q = expt::test::random_normal(elems(s), 31), k = expt::test::random_normal(elems(s), 32),
         v = expt::test::random_normal(elems(s), 33);
    const auto r = expt::test::random_normal(elems(s), 34);  // loss = sum(o * r), so dL/do = r
    const double scale = 1.0 / std::sqrt(s.head_dim);
    std::vector<double> o(elems(s)), lse(static_cast<std::size_t>(s.batch) * s.heads * s.seq_len),
        work(expt::kernels::attention_reference_workspace_size(s.seq_len));
    auto loss = [&] {
      expt::kernels::attention_reference_forward(s, scale, q.data(), k.data(), v.data(), o.data(), lse.data(),
                                                 work.data());
      return expt::test::dot(o.data(), r.data(), o.size());
    };
    loss();
    std::vector<double> dq(elems(s)), dk(elems(s)), dv(elems(s));
    expt::kernels::attention_reference_backward(s, scale, q.data(), k.data(), v.data(), o.data(), lse.data(), r.data(),
                                                dq.data(), dk.data(), dv.data(), work.data());
    REQUIRE(expt::test::relative_error(expt::test::central_difference(q.data(), q.size(), loss), dq) < 1e-6);
    REQUIRE(expt::test::relative_error(expt::test::central_difference(k.data(), k.size(), loss), dk) < 1e-6);
    REQUIRE(expt::test::relative_error(expt::test::central_difference(v.data(), v.size(), loss), dv) < 1e-6);
  }
}
