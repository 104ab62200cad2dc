// Short causal depthwise convolution + SiLU: forward against a naive zero-padded loop written here,
// backward against central differences, fast == reference, causality and tap orientation.
#include "kernels/short_conv.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/simd_lanes.hpp"
#include "tests/kernels/gradient_check.hpp"

using expt::kernels::ShortConvShape;

namespace {

std::size_t elems(const ShortConvShape& s) { return static_cast<std::size_t>(s.batch) * s.seq_len * s.channels; }

// Left-pad every sequence with W-1 zero rows, then y_t = SiLU(sum_i w[c,i] padded[t+i]).
std::vector<double> naive_forward(const ShortConvShape& s, const std::vector<double>& x, const std::vector<double>& w) {
  const int W = s.width, D = s.channels, P = s.seq_len + W - 1;
  std::vector<double> y(elems(s));
  for (int b = 0; b < s.batch; ++b) {
    std::vector<double> padded(static_cast<std::size_t>(P) * D, 0.0);
    for (int t = 0; t < s.seq_len; ++t)
      for (int c = 0; c < D; ++c)
        padded[static_cast<std::size_t>(t + W - 1) * D + c] = x[(static_cast<std::size_t>(b) * s.seq_len + t) * D + c];
    for (int t = 0; t < s.seq_len; ++t)
      for (int c = 0; c < D; ++c) {
        double pre = 0;
        for (int i = 0; i < W; ++i) pre += w[static_cast<std::size_t>(c) * W + i] * padded[(t + i) * D + c];
        y[(static_cast<std::size_t>(b) * s.seq_len + t) * D + c] = pre / (1 + std::exp(-pre));
      }
  }
  return y;
}

}  // namespace

TEST_CASE("short conv forward equals a naive zero-padded convolution", "[short_conv]") {
  for (int width : {1, 3, 4})
    for (int seq_len : {2, 9}) {
      const ShortConvShape s{2, seq_len, 5, width};
      const auto x = expt::test::random_normal(elems(s), 11 + seq_len);
      const auto w = expt::test::random_normal(static_cast<std::size_t>(s.channels) * width, 12 + width);
      const auto expected = naive_forward(s, x, w);
      std::vector<double> fast(elems(s)), reference(elems(s));
      expt::kernels::short_conv_forward(s, x.data(), w.data(), fast.data());
      expt::kernels::short_conv_reference_forward(s, x.data(), w.data(), reference.data());
      INFO("W=" << width << " T=" << seq_len);
      CHECK(expt::test::relative_error(fast, expected) < 1e-14);
      CHECK(expt::test::relative_error(reference, expected) < 1e-14);
      const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end());
      std::vector<float> yf(elems(s));
      expt::kernels::short_conv_forward(s, xf.data(), wf.data(), yf.data());
      CHECK(expt::test::relative_error(std::vector<double>(yf.begin(), yf.end()), expected) < 1e-6);
    }
}

TEST_CASE("short conv backward matches central differences", "[short_conv]") {
  const ShortConvShape s{2, 7, 3, 4};
  auto x = expt::test::random_normal(elems(s), 21);
  auto w = expt::test::random_normal(static_cast<std::size_t>(s.channels) * s.width, 22);
  const auto dy = expt::test::random_normal(elems(s), 23);
  std::vector<double> y(elems(s));
  auto loss = [&] {
    expt::kernels::short_conv_reference_forward(s, x.data(), w.data(), y.data());
    return expt::test::dot(y.data(), dy.data(), y.size());
  };
  const auto dx_fd = expt::test::central_difference(x.data(), x.size(), loss);
  const auto dw_fd = expt::test::central_difference(w.data(), w.size(), loss);
  std::vector<double> dx(x.size()), dw(w.size()), dx_ref(x.size()), dw_ref(w.size());
  expt::kernels::short_conv_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data());
  expt::kernels::short_conv_reference_backward(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data());
  CHECK(expt::test::relative_error(dx, dx_fd) < 1e-8);
  CHECK(expt::test::relative_error(dw, dw_fd) < 1e-8);
  CHECK(expt::test::relative_error(dx_ref, dx_fd) < 1e-8);
  CHECK(expt::test::relative_error(dw_ref, dw_fd) < 1e-8);

  // fp32 fast backward against the fp64 result.
  const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), dyf(dy.begin(), dy.end());
  std::vector<float> dxf(x.size()), dwf(w.size());
  expt::kernels::short_conv_backward(s, xf.data(), wf.data(), dyf.data(), dxf.data(), dwf.data());
  CHECK(expt::test::relative_error(std::vector<double>(dxf.begin(), dxf.end()), dx) < 1e-5);
  CHECK(expt::test::relative_error(std::vector<double>(dwf.begin(), dwf.end()), dw) < 1e-5);
}

TEST_CASE("short conv backward equals the reference backward", "[short_conv]") {
  // Sequences shorter than, equal to and longer than the width; dx and dweight start as NaN, so
  // every element must be written.
  for (int width : {1, 3, 4})
    for (int seq_len : {1, 2, 4, 9}) {
      const ShortConvShape s{2, seq_len, 5, width};
      INFO("W=" << width << " T=" << seq_len);
      const auto x = expt::test::random_normal(elems(s), 41 + seq_len);
      const auto w = expt::test::random_normal(static_cast<std::size_t>(s.channels) * width, 42 + width);
      const auto dy = expt::test::random_normal(elems(s), 43);
      const double nan = std::numeric_limits<double>::quiet_NaN();
      std::vector<double> dx(x.size(), nan), dw(w.size(), nan), dx_ref(x.size()), dw_ref(w.size());
      expt::kernels::short_conv_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data());
      expt::kernels::short_conv_reference_backward(s, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data());
      CHECK(expt::test::relative_error(dx, dx_ref) < 1e-13);
      CHECK(expt::test::relative_error(dw, dw_ref) < 1e-13);
    }
}

TEST_CASE("short conv is causal and w = e_{W-1} gives SiLU(x)", "[short_conv]") {
  const ShortConvShape s{1, 10, 4, 4};
  auto x = expt::test::random_normal(elems(s), 31);
  const auto w = expt::test::random_normal(static_cast<std::size_t>(s.channels) * s.width, 32);
  std::vector<double> before(elems(s)), after(elems(s));
  expt::kernels::short_conv_forward(s, x.data(), w.data(), before.data());
  const int changed = 6;  // perturb every channel of token 6: rows 0..5 must not move
  for (int c = 0; c < s.channels; ++c) x[static_cast<std::size_t>(changed) * s.channels + c] += 1.0;
  expt::kernels::short_conv_forward(s, x.data(), w.data(), after.data());
  for (std::size_t i = 0; i < static_cast<std::size_t>(changed) * s.channels; ++i) CHECK(after[i] == before[i]);
  bool moved = false;
  for (std::size_t i = static_cast<std::size_t>(changed) * s.channels; i < after.size(); ++i)
    moved = moved || after[i] != before[i];
  CHECK(moved);

  std::vector<double> identity(static_cast<std::size_t>(s.channels) * s.width, 0.0), y(elems(s));
  for (int c = 0; c < s.channels; ++c) identity[static_cast<std::size_t>(c) * s.width + s.width - 1] = 1.0;
  expt::kernels::short_conv_forward(s, x.data(), identity.data(), y.data());
  for (std::size_t i = 0; i < y.size(); ++i) CHECK(y[i] == Approx(x[i] / (1 + std::exp(-x[i]))).epsilon(1e-14));
}

TEST_CASE("short conv forward and backward give the same bits at any buffer offset", "[short_conv][determinism]") {
  // Inputs and outputs shifted by a few floats change only the alignment (the kernels vectorise
  // over channels), so y, dx and dw must match bit for bit; 64 channels (whole vectors) and 37 (a
  // tail), sequences shorter and longer than the width.
  for (int channels : {64, 37})
    for (int seq_len : {3, 29}) {
      const ShortConvShape s{2, seq_len, channels, 4};
      const std::size_t n = elems(s), nw = static_cast<std::size_t>(channels) * s.width;
      std::vector<float> x(n), dy(n), w(nw);
      std::uint64_t k = 0;
      for (auto* v : {&x, &dy, &w})
        for (float& e : *v) e = static_cast<float>(std::sin(0.7 * static_cast<double>(++k)) * 1.5);
      auto run_at = [&](std::size_t offset) {
        const auto shift = static_cast<std::ptrdiff_t>(offset);
        auto placed = [shift](const std::vector<float>& v) {
          std::vector<float> y(v.size() + static_cast<std::size_t>(shift), -1.0f);
          std::copy(v.begin(), v.end(), y.begin() + shift);
          return y;
        };
        const auto xs = placed(x), dys = placed(dy), ws = placed(w);
        std::vector<float> y(n + offset), dx(n + offset), dw(nw + offset);
        expt::kernels::short_conv_forward(s, xs.data() + shift, ws.data() + shift, y.data() + shift);
        expt::kernels::short_conv_backward(s, xs.data() + shift, ws.data() + shift, dys.data() + shift,
                                           dx.data() + shift, dw.data() + shift);
        std::vector<std::vector<float>> all;
        for (auto* v : {&y, &dx, &dw}) all.emplace_back(v->begin() + shift, v->end());
        return all;
      };
      const auto reference = run_at(0);
      for (std::size_t offset : {1u, 2u, 3u, 5u, 8u}) {
        const auto got = run_at(offset);
        for (std::size_t part = 0; part < reference.size(); ++part) {
          INFO("D=" << channels << " T=" << seq_len << " offset " << offset << " output " << part);
          REQUIRE(got[part].size() == reference[part].size());
          CHECK(std::memcmp(got[part].data(), reference[part].data(), got[part].size() * sizeof(float)) == 0);
        }
      }
    }
}

TEST_CASE("short conv in float gives the same bits at every vector width", "[short_conv][determinism]") {
  // Width 4 in float runs lane groups (kernels/simd_lanes.hpp): 16 and 8 lanes must reproduce the
  // one-lane path exactly, channel counts with and without a tail, sequences shorter and longer
  // than the width; and the one-lane path equals the fp64 reference to float accuracy.
  std::vector<int> widths{4};
#if defined(EXPT_HAVE_AVX2_LANES)
  widths.push_back(32);
#else
  WARN("AVX2 lane path not compiled in this build: not compared");
#endif
#if defined(EXPT_HAVE_AVX512_LANES)
  widths.push_back(64);
#else
  WARN("AVX-512 lane path not compiled in this build: not compared");
#endif
  for (int channels : {48, 37})
    for (int seq_len : {1, 3, 29}) {
      const ShortConvShape s{3, seq_len, channels, 4};
      const std::size_t n = elems(s), nw = static_cast<std::size_t>(channels) * s.width;
      const auto xd = expt::test::random_normal(n, 61 + seq_len), wd = expt::test::random_normal(nw, 62);
      const auto dyd = expt::test::random_normal(n, 63);
      const std::vector<float> x(xd.begin(), xd.end()), w(wd.begin(), wd.end()), dy(dyd.begin(), dyd.end());
      auto run = [&](int vector_bytes) {
        std::vector<float> y(n, NAN), dx(n, NAN), dw(nw, NAN);
        expt::kernels::short_conv_forward(s, x.data(), w.data(), y.data(), vector_bytes);
        expt::kernels::short_conv_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), vector_bytes);
        return std::vector<std::vector<float>>{y, dx, dw};
      };
      const auto one_lane = run(4);
      std::vector<double> y_ref(n), dx_ref(n), dw_ref(nw);
      expt::kernels::short_conv_reference_forward(s, xd.data(), wd.data(), y_ref.data());
      expt::kernels::short_conv_reference_backward(s, xd.data(), wd.data(), dyd.data(), dx_ref.data(), dw_ref.data());
      const std::vector<double>* refs[] = {&y_ref, &dx_ref, &dw_ref};
      for (std::size_t part = 0; part < 3; ++part) {
        INFO("D=" << channels << " T=" << seq_len << " output " << part);
        CHECK(expt::test::relative_error(std::vector<double>(one_lane[part].begin(), one_lane[part].end()),
                                         *refs[part]) < 1e-5);
      }
      for (int vector_bytes : widths) {
        const auto got = run(vector_bytes);
        for (std::size_t part = 0; part < 3; ++part) {
          INFO("D=" << channels << " T=" << seq_len << " vector_bytes " << vector_bytes << " output " << part);
          CHECK(std::memcmp(got[part].data(), one_lane[part].data(), got[part].size() * sizeof(float)) == 0);
        }
      }
    }
  CHECK_THROWS_AS(expt::kernels::short_conv_forward(ShortConvShape{1, 4, 8, 4}, std::vector<float>(32).data(),
                                                    std::vector<float>(32).data(), std::vector<float>(32).data(), 16),
                  std::invalid_argument);
}
