// Forward+backward time of the GLA, delta-rule, tiled-attention and short-convolution kernels
// against their plain references, single BLAS thread, fp32, at T = 256 and 1024 (batch 2, 4 heads).
//   GLA:        d_k = d_v = 64, chunk 64 / sub-chunk 16 vs the recurrent reference; and at the shape
//               of bench/configs/gla.yaml's layer (d_model 128: batch 8, T = 256, 4 heads, d_k 16,
//               d_v 32), BM_GlaChunkedModel
//   delta rule: d_k = d_v = 64, unit-norm keys, beta in (0, 1), gated, chunk 64 vs the recurrent
//               reference; and DeltaProduct at the shape of bench/configs/deltaproduct.yaml's layer
//               at d_model 256 (batch 8, T = 256, 4 heads, d_k = d_v = 64, 2 Householder steps per
//               token, chunk 64), ungated (0, the config's default) and gated (1),
//               BM_DeltaProductModel
//   attention:  head_dim 32, 64 x 64 tiles vs the full-matrix reference
//   short conv: 256 channels, width 4, channel-vectorised vs per-channel reference; and at the
//               shapes of a DeltaProduct layer of bench/configs/deltaproduct.yaml at d_model 256
//               (batch 8, T = 256, 256 or 512 channels, 64-byte aligned buffers as the layer's),
//               forward and backward apart, BM_ShortConvModelForward / Backward, in the target's
//               widest lanes (0) and in AVX2's 8 (32; the AVX2 path timed on an AVX-512 CPU), with
//               the buffers in cache (0) and cold (1)
// The "tokens/s" counter counts batch * T tokens per forward+backward.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "core/util/aligned_vector.hpp"
#include "kernels/attention.hpp"
#include "kernels/attention_tiled.hpp"
#include "kernels/delta_product.hpp"
#include "kernels/delta_rule.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gla.hpp"
#include "kernels/short_conv.hpp"

namespace {

namespace k = expt::kernels;

constexpr int kBatch = 2;
constexpr int kHeads = 4;

std::vector<float> random_vector(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(n);
  for (float& x : out) x = dist(gen);
  return out;
}

// Every row of `width` values scaled to unit L2 norm.
void normalise_rows(std::vector<float>& x, int width) {
  for (std::size_t r = 0; r * width < x.size(); ++r) {
    float* row = x.data() + r * width;
    float ss = 0;
    for (int i = 0; i < width; ++i) ss += row[i] * row[i];
    for (int i = 0; i < width; ++i) row[i] /= std::sqrt(ss);
  }
}

void set_tokens(benchmark::State& state, int seq_len) {
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(kBatch) * seq_len, benchmark::Counter::kIsIterationInvariantRate);
}

// sub: the sub-chunk length of the chunked form; batch, heads, dk, dv: the shape.
void gla(benchmark::State& state, bool chunked, int sub = 16, int batch = kBatch, int heads = kHeads, int dk_ = 64,
         int dv_ = 64) {
  k::set_blas_threads(1);
  const int T = static_cast<int>(state.range(0));
  const k::GlaShape s{batch, T, heads, dk_, dv_};
  const std::size_t rows = static_cast<std::size_t>(batch) * T * heads;
  const std::size_t n = rows * dk_, nv = rows * dv_, ns = static_cast<std::size_t>(batch) * heads * dk_ * dv_;
  const auto q = random_vector(n, 1), key = random_vector(n, 2), v = random_vector(nv, 3), dout = random_vector(nv, 4);
  auto g = random_vector(n, 5);
  for (float& x : g) x = -std::log1p(std::exp(-x)) / 16.0f;  // logsigmoid / 16, fla's gate at init
  std::vector<float> o(nv), fin(ns), dq(n), dk(n), dv(nv), dg(n), ds0(ns);
  const k::GlaInputs<float> in{q.data(), key.data(), v.data(), g.data(), nullptr};
  const k::GlaGradients<float> grads{dq.data(), dk.data(), dv.data(), dg.data(), ds0.data()};
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk_));
  const k::GlaChunking chunking{64, sub};
  for (auto _ : state) {
    if (chunked) {
      k::gla_chunked_forward(s, scale, in, o.data(), fin.data(), chunking);
      k::gla_chunked_backward(s, scale, in, dout.data(), nullptr, grads, chunking);
    } else {
      k::gla_recurrent_forward(s, scale, in, o.data(), fin.data());
      k::gla_recurrent_backward(s, scale, in, dout.data(), nullptr, grads);
    }
    benchmark::DoNotOptimize(dg.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(batch) * T, benchmark::Counter::kIsIterationInvariantRate);
}

void delta_rule(benchmark::State& state, bool chunked) {
  k::set_blas_threads(1);
  const int T = static_cast<int>(state.range(0)), D = 64;
  const k::DeltaRuleShape s{kBatch, T, kHeads, D, D};
  const std::size_t rows = static_cast<std::size_t>(kBatch) * T * kHeads, n = rows * D, ns = kBatch * kHeads * D * D;
  auto key = random_vector(n, 2);
  normalise_rows(key, D);  // unit keys, as the layer's L2 norm makes them
  const auto q = random_vector(n, 1), v = random_vector(n, 3), dout = random_vector(n, 4);
  auto beta = random_vector(rows, 5), g = random_vector(rows, 6);
  for (float& x : beta) x = 1.0f / (1.0f + std::exp(-x));
  for (float& x : g) x = -std::log1p(std::exp(-x)) / 16.0f;
  std::vector<float> o(n), fin(ns), dq(n), dk(n), dv(n), dbeta(rows), dg(rows);
  const k::DeltaRuleInputs<float> in{q.data(), key.data(), v.data(), beta.data(), g.data(), nullptr};
  const k::DeltaRuleGradients<float> grads{dq.data(), dk.data(), dv.data(), dbeta.data(), dg.data(), nullptr};
  const float scale = 0.125f;
  for (auto _ : state) {
    if (chunked) {
      k::delta_rule_chunked_forward(s, scale, in, o.data(), fin.data());
      k::delta_rule_chunked_backward(s, scale, in, dout.data(), nullptr, grads);
    } else {
      k::delta_rule_recurrent_forward(s, scale, in, o.data(), fin.data());
      k::delta_rule_recurrent_backward(s, scale, in, dout.data(), nullptr, grads);
    }
    benchmark::DoNotOptimize(dg.data());
  }
  set_tokens(state, T);
}

// DeltaProduct forward + backward at one layer's shape: k, v, beta have `steps` rows per token.
void delta_product_model(benchmark::State& state) {
  k::set_blas_threads(1);
  const int T = static_cast<int>(state.range(0)), batch = 8, heads = 4, D = 64, steps = 2;
  const bool gated = state.range(1) != 0;
  const k::DeltaProductShape s{batch, T, heads, D, D, steps};
  const std::size_t tokens = static_cast<std::size_t>(batch) * T * heads, virtual_rows = tokens * steps;
  auto key = random_vector(virtual_rows * D, 2);
  normalise_rows(key, D);  // unit keys, as the layer's L2 norm makes them
  const auto q = random_vector(tokens * D, 1), v = random_vector(virtual_rows * D, 3);
  const auto dout = random_vector(tokens * D, 4);
  auto beta = random_vector(virtual_rows, 5), g = random_vector(tokens, 6);
  for (float& x : beta) x = 1.0f / (1.0f + std::exp(-x));
  for (float& x : g) x = -std::log1p(std::exp(-x)) / 16.0f;
  std::vector<float> o(tokens * D), dq(tokens * D), dk(virtual_rows * D), dv(virtual_rows * D), dbeta(virtual_rows),
      dg(tokens);
  const k::DeltaRuleInputs<float> in{q.data(), key.data(), v.data(), beta.data(), gated ? g.data() : nullptr, nullptr};
  const k::DeltaRuleGradients<float> grads{dq.data(), dk.data(), dv.data(), dbeta.data(), gated ? dg.data() : nullptr,
                                           nullptr};
  for (auto _ : state) {
    k::delta_product_forward(s, 0.125f, in, o.data(), static_cast<float*>(nullptr));
    k::delta_product_backward(s, 0.125f, in, dout.data(), static_cast<const float*>(nullptr), grads);
    benchmark::DoNotOptimize(dk.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(batch) * T, benchmark::Counter::kIsIterationInvariantRate);
}

void attention(benchmark::State& state, bool tiled) {
  k::set_blas_threads(1);
  const int T = static_cast<int>(state.range(0)), D = 32;
  const k::AttentionShape s{kBatch, T, kHeads, D};
  const std::size_t n = static_cast<std::size_t>(kBatch) * T * kHeads * D;
  const auto q = random_vector(n, 1), key = random_vector(n, 2), v = random_vector(n, 3), dout = random_vector(n, 4);
  std::vector<float> o(n), lse(static_cast<std::size_t>(kBatch) * kHeads * T), dq(n), dk(n), dv(n);
  const k::AttentionTiling tiling;
  std::vector<float> work(tiled ? k::attention_tiled_workspace_size(tiling, T, D)
                                : k::attention_reference_workspace_size(T));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  for (auto _ : state) {
    if (tiled) {
      k::attention_tiled_forward(s, scale, q.data(), key.data(), v.data(), o.data(), lse.data(), work.data(), tiling);
      k::attention_tiled_backward(s, scale, q.data(), key.data(), v.data(), o.data(), lse.data(), dout.data(),
                                  dq.data(), dk.data(), dv.data(), work.data(), tiling);
    } else {
      k::attention_reference_forward(s, scale, q.data(), key.data(), v.data(), o.data(), lse.data(), work.data());
      k::attention_reference_backward(s, scale, q.data(), key.data(), v.data(), o.data(), lse.data(), dout.data(),
                                      dq.data(), dk.data(), dv.data(), work.data());
    }
    benchmark::DoNotOptimize(dk.data());
  }
  set_tokens(state, T);
}

void short_conv(benchmark::State& state, bool fast) {
  const int T = static_cast<int>(state.range(0)), D = 256;
  const k::ShortConvShape s{kBatch, T, D, 4};
  const std::size_t n = static_cast<std::size_t>(kBatch) * T * D;
  const auto x = random_vector(n, 1), w = random_vector(static_cast<std::size_t>(D) * 4, 2, 0.5f);
  const auto dy = random_vector(n, 3);
  std::vector<float> y(n), dx(n), dw(static_cast<std::size_t>(D) * 4);
  for (auto _ : state) {
    if (fast) {
      k::short_conv_forward(s, x.data(), w.data(), y.data());
      k::short_conv_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data());
    } else {
      k::short_conv_reference_forward(s, x.data(), w.data(), y.data());
      k::short_conv_reference_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data());
    }
    benchmark::DoNotOptimize(dw.data());
  }
  set_tokens(state, T);
}

// One direction of the short convolution at a layer's shape: range(0) channels, batch 8, T = 256,
// lane groups of range(1) bytes (0: the target's widest). range(2) = 0: x, dy and the output (2-4 MB
// each) stay in the last-level cache across iterations; 1: cold, a 64 MB buffer is written
// (untimed) before every call, as in the model, where the backward's x comes from DRAM. Counter:
// nanoseconds per element of x.
void short_conv_model(benchmark::State& state, bool backward) {
  constexpr int batch = 8, T = 256;
  const int D = static_cast<int>(state.range(0)), vector_bytes = static_cast<int>(state.range(1));
  const bool cold = state.range(2) != 0;
  const k::ShortConvShape s{batch, T, D, 4};
  const std::size_t n = static_cast<std::size_t>(batch) * T * D;
  const auto xs = random_vector(n, 1), w = random_vector(static_cast<std::size_t>(D) * 4, 2, 0.5f);
  const auto dys = random_vector(n, 3);
  expt::util::AlignedVector<float> x(xs.begin(), xs.end()), dy(dys.begin(), dys.end()), out(n),
      dw(static_cast<std::size_t>(D) * 4);
  std::vector<float> flush(cold ? std::size_t{16} << 20 : 0);
  float fill = 0;
  for (auto _ : state) {
    if (cold) {
      state.PauseTiming();
      std::fill(flush.begin(), flush.end(), fill += 1);
      benchmark::ClobberMemory();
      state.ResumeTiming();
    }
    if (backward)
      k::short_conv_backward(s, x.data(), w.data(), dy.data(), out.data(), dw.data(), vector_bytes);
    else
      k::short_conv_forward(s, x.data(), w.data(), out.data(), vector_bytes);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ns/element"] = benchmark::Counter(
      static_cast<double>(n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_GlaChunked(benchmark::State& state) { gla(state, true); }
void BM_GlaChunkedSub(benchmark::State& state) { gla(state, true, static_cast<int>(state.range(1))); }
void BM_GlaRecurrent(benchmark::State& state) { gla(state, false); }
void BM_GlaChunkedModel(benchmark::State& state) { gla(state, true, 16, 8, 4, 16, 32); }
void BM_DeltaRuleChunked(benchmark::State& state) { delta_rule(state, true); }
void BM_DeltaRuleRecurrent(benchmark::State& state) { delta_rule(state, false); }
void BM_AttentionTiled(benchmark::State& state) { attention(state, true); }
void BM_AttentionReference(benchmark::State& state) { attention(state, false); }
void BM_ShortConv(benchmark::State& state) { short_conv(state, true); }
void BM_ShortConvReference(benchmark::State& state) { short_conv(state, false); }
void BM_ShortConvModelForward(benchmark::State& state) { short_conv_model(state, false); }
void BM_ShortConvModelBackward(benchmark::State& state) { short_conv_model(state, true); }

}  // namespace

BENCHMARK(BM_GlaChunked)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
// Sub-chunk length sweep at T = 1024 (the layer uses 16).
BENCHMARK(BM_GlaChunkedSub)->ArgsProduct({{1024}, {8, 32, 64}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GlaRecurrent)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GlaChunkedModel)->Arg(256)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DeltaRuleChunked)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(delta_product_model)
    ->Name("BM_DeltaProductModel")
    ->ArgsProduct({{256}, {0, 1}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DeltaRuleRecurrent)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionTiled)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionReference)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ShortConv)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ShortConvReference)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ShortConvModelForward)->ArgsProduct({{256, 512}, {0, 32}, {0, 1}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ShortConvModelBackward)->ArgsProduct({{256, 512}, {0, 32}, {0, 1}})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
