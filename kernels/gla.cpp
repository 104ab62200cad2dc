#include "kernels/gla.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/elementwise_math.hpp"
#include "kernels/gemm.hpp"
#include "kernels/reduction.hpp"

// The equation labels (F1)-(F5) and (D1)-(D6) below are those of docs/derivations/gla.md, which
// derives them.

// The vectors below are up to 64 bytes (GlaChunking::vector_bytes); on a target without AVX-512
// (builds without -march=native, e.g. the sanitizer preset, or an AVX2 CPU) GCC notes that passing or returning them by
// value would change the ABI (-Wpsabi). They never cross this translation unit (every function using them is in the
// anonymous namespace and inlined), so no ABI is involved and the note is silenced here (GCC's
// warning; clang has no -Wpsabi).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace expt::kernels {

namespace {

std::size_t zu(int x) { return static_cast<std::size_t>(x); }

// Offsets of head h of sequence b: rows of q/k/g (stride heads*key_dim), rows of v/out (stride
// heads*value_dim), and the d_k x d_v state.
struct HeadOffsets {
  std::size_t key = 0;
  std::size_t value = 0;
  std::size_t state = 0;
};

HeadOffsets head_offsets(const GlaShape& s, int b, int h) {
  return {token_offset(s, b, h, s.key_dim), token_offset(s, b, h, s.value_dim), state_offset(s, b, h)};
}

void check_shape(const GlaShape& s) {
  if (s.batch < 0 || s.seq_len < 0 || s.heads < 0 || s.key_dim < 0 || s.value_dim < 0)
    throw std::invalid_argument("gla: negative dimension");
}

void check_chunking(const GlaChunking& c) {
  if (c.chunk_size < 1 || c.sub_chunk_size < 1)
    throw std::invalid_argument("gla: chunk_size and sub_chunk_size must be >= 1");
  if (c.vector_bytes != 0 && c.vector_bytes != 16 && c.vector_bytes != 32 && c.vector_bytes != 64)
    throw std::invalid_argument("gla: vector_bytes must be 0, 16, 32 or 64");
}

// Channels are grouped in kLanes (Lanes<T>, kernels/reduction.hpp): the loops that carry a running
// sum or product over rows hold it in vector registers instead of in memory, where every row would
// wait on a store and a reload.
constexpr int kLanes = static_cast<int>(kSumLanes);

// The vector width the lane groups are computed in (GlaChunking::vector_bytes): a whole group of
// kLanes channels is kLanes * sizeof(T) / W parts of W bytes, each one GCC vector of the target's
// own width. A 64-byte Lanes<T> on an AVX2 target is not one: GCC lowers its operations through
// the stack (stores, 16-byte reloads, vpinsrq: store-forwarding stalls), which made the diagonal
// score blocks the largest item outside BLAS on Zen 3 (docs/performance.md "AVX2"). The lanes of a
// group are independent in every loop below (no sum across lanes), so the width is not part of
// the math: every width gives the same bits.
constexpr int kTargetVectorBytes =
#if defined(__AVX512F__)
    64;
#elif defined(__AVX__)
    32;
#else
    16;
#endif

int vector_width(const GlaChunking& c) { return c.vector_bytes == 0 ? kTargetVectorBytes : c.vector_bytes; }

// Runs body(m, ops) over the key channels of a row: for every whole group of kLanes channels, on
// each W-byte part of it from its channel m with ops = PartOps<T, W> (values are W-byte vectors),
// then for each remaining channel m with ops = ScalarOps (values are T). The body is written once
// for all (a generic lambda); a channel always goes through the same path for a given d_k, so its
// result depends neither on where the buffers lie nor on W. Scans over rows (running products and
// sums) keep their running value in registers. vw: the width W in bytes (vector_width).
template <class T, int W>
struct PartOps {
  typedef T Vec __attribute__((vector_size(W)));
  static Vec load(const T* p) {
    Vec x;
    std::memcpy(&x, p, sizeof x);
    return x;
  }
  static void store(T* p, const Vec& x) { std::memcpy(p, &x, sizeof x); }
  static Vec ones() { return Vec{} + T(1); }
};
template <class T>
struct ScalarOps {
  static T load(const T* p) { return *p; }
  static void store(T* p, T x) { *p = x; }
  static T ones() { return T(1); }
};
template <class T, int W, class Body>
void channel_groups_in(int dk, Body& body) {
  constexpr int part = W / static_cast<int>(sizeof(T));
  static_assert(part >= 1 && kLanes % part == 0);
  const int full = dk / kLanes * kLanes;
  for (int m0 = 0; m0 < full; m0 += part) body(m0, PartOps<T, W>{});
  for (int m = full; m < dk; ++m) body(m, ScalarOps<T>{});
}
template <class T, class Body>
void for_channel_groups(int dk, int vw, Body body) {
  if (vw == 64)
    channel_groups_in<T, 64>(dk, body);
  else if (vw == 32)
    channel_groups_in<T, 32>(dk, body);
  else
    channel_groups_in<T, 16>(dk, body);
}

// Per-chunk scratch of one head. A chunk has L <= C rows t = 0..L-1 (local indices); b_t is the
// local inclusive cumulative log-gate, b_* = b_{L-1}. Every factor below is a product of gates
// a = exp(g) <= 1, i.e. exp of a non-positive exponent. All [C, d_k] arrays are row-major, ld d_k.
template <class T>
struct ChunkScratch {
  // Grows every buffer to fit chunks of `chunk` rows split into sub-chunks of `sub` rows (never
  // shrinks them).
  void fit(int chunk, int sub, int key_dim) {
    const std::size_t ck = zu(chunk) * zu(key_dim);
    for (std::vector<T>* buf : {&gate, &decay_in, &decay_out, &decay_sub, &q_rel, &q_bar, &k_bar, &block_q, &block_k})
      grow(*buf, ck);
    const int subs = (chunk + sub - 1) / sub;
    grow(key_decay, key_block_row(subs * sub, sub) * zu(key_dim));
    grow(k_rel, key_block_row(subs * sub, sub) * zu(key_dim));
    grow(diag_keys, zu(key_dim) * zu((sub + kLanes - 1) / kLanes * kLanes));
    grow(diag_run, zu(sub) * zu(key_dim));
    grow(scores, zu(chunk) * zu(chunk));
    grow(dscores, zu(chunk) * zu(chunk));
    grow(rho, zu(key_dim));
  }
  static void grow(std::vector<T>& buf, std::size_t n) {
    if (buf.size() < n) buf.resize(n);
  }
  // First row of the key block of the sub-chunk starting at i0 (a multiple of sub) in key_decay and
  // k_rel: the blocks of the sub-chunks before it hold sub + 2 sub + ... + (i0 - sub) rows.
  static std::size_t key_block_row(int i0, int sub) {
    const std::size_t j = zu(i0 / sub);
    return j == 0 ? 0 : j * (j - 1) / 2 * zu(sub);
  }
  std::vector<T> gate;       // a_t = exp(g_t)
  std::vector<T> decay_in;   // exp(b_t)        = prod_{j <= t} a_j
  std::vector<T> decay_out;  // exp(b_* - b_t)  = prod_{t < j < L} a_j
  std::vector<T> decay_sub;  // exp(b_t - b_i0) = prod_{i0 < j <= t} a_j, i0 = first row of t's sub-chunk
  std::vector<T> q_rel;      // q_t (.) decay_sub_t
  std::vector<T> q_bar;      // scale q_t (.) decay_in_t                      (F1)
  std::vector<T> k_bar;      // k_t (.) decay_out_t                          (F5)
  std::vector<T> key_decay;  // per sub-chunk I from row i0: [i0, d_k] exp(b_i0 - b_s) = prod_{s < j <= i0} a_j
  std::vector<T> k_rel;      // per sub-chunk I from row i0: [i0, d_k] k_s (.) key_decay_s (s < i0)
  std::vector<T> block_q;    // [C, d_k] product scratch (query side)
  std::vector<T> block_k;    // [C, d_k] product scratch (key side)
  std::vector<T> diag_keys;  // [d_k, c rounded up to kLanes] KE of a diagonal block of the scores
  std::vector<T> diag_run;   // [c, d_k] diagonal_gradients' decayed rows
  std::vector<T> scores;     // [L, L] A (F3), ld L
  std::vector<T> dscores;    // [L, L] dA = scale dO V^T (formed for s < the end of t's 16-row block), ld L
  std::vector<T> rho;        // [d_k] rowsum(S_out (.) dH)
};

// The gate-only factors of one chunk, [L, d_k] each with ld d_k: in the chunk scratch in the
// forward, in the per-head arrays of the backward's state sweep in its reverse sweep.
template <class T>
struct ChunkDecays {
  const T* gate = nullptr;
  const T* decay_in = nullptr;
  const T* decay_out = nullptr;
  const T* k_bar = nullptr;
};

// Per-thread scratch of the chunked kernels, kept from call to call so that a call neither
// allocates nor touches fresh pages (the per-call vectors cost about 9 % of the kernel in page
// faults and zeroing at T = 1024). Every element is written before it is read within a call, so
// neither the old contents nor the buffers' addresses can reach a result.
template <class T>
struct ChunkedWorkspace {
  ChunkScratch<T> chunk;
  std::vector<T> S, dH;     // [d_k, d_v] running state and its gradient
  std::vector<T> entering;  // [chunks, d_k, d_v] S_in of every chunk of one head (backward)
  // [seq_len, d_k] gate, decay_in, decay_out and k_bar of every chunk of one head (backward: the
  // state sweep's factors, reused by the reverse sweep).
  std::vector<T> head_gate, head_decay_in, head_decay_out, head_k_bar;
};

template <class T>
ChunkedWorkspace<T>& chunked_workspace(int chunk, int sub, int seq_len, int key_dim, int value_dim) {
  thread_local ChunkedWorkspace<T> ws;
  ws.chunk.fit(chunk, sub, key_dim);
  const std::size_t state_size = zu(key_dim) * zu(value_dim);
  ChunkScratch<T>::grow(ws.S, state_size);
  ChunkScratch<T>::grow(ws.dH, state_size);
  ChunkScratch<T>::grow(ws.entering, zu((seq_len + chunk - 1) / chunk) * state_size);
  for (std::vector<T>* buf : {&ws.head_gate, &ws.head_decay_in, &ws.head_decay_out, &ws.head_k_bar})
    ChunkScratch<T>::grow(*buf, zu(seq_len) * zu(key_dim));
  return ws;
}

// Row operations on d contiguous elements as plain loops, which GCC vectorises (restrict: the
// operands never overlap). Elementwise only (the same operations on every element, in the vector
// body and the scalar remainder alike), so no result depends on alignment.
template <class T>
void row_scale_into(int d, T c, T* __restrict y) {
  for (int i = 0; i < d; ++i) y[i] *= c;
}
template <class T>
void row_add_mul(int d, const T* __restrict a, const T* __restrict b, T* __restrict y) {
  for (int i = 0; i < d; ++i) y[i] += a[i] * b[i];
}

// a_t = exp(g_t) for the L rows of one chunk of one head, into gate [L, d_k].
template <class T>
void chunk_gates(int L, int dk, const T* g, int ld_key, T* gate) {
  for (int t = 0; t < L; ++t) {
    const T* g_t = g + zu(t) * zu(ld_key);
    T* a_t = gate + zu(t) * zu(dk);
    for (int i = 0; i < dk; ++i) a_t[i] = math::exp(g_t[i]);
  }
}

// decay_in: prefix products of the gates, [L, d_k].
template <class T>
void chunk_decay_in(int L, int dk, int vw, const T* gate, T* decay_in) {
  for_channel_groups<T>(dk, vw, [&](int m, auto ops) {
    auto run = ops.load(gate + m);
    ops.store(decay_in + m, run);
    for (int t = 1; t < L; ++t) {
      const std::size_t r = zu(t) * zu(dk) + zu(m);
      run = run * ops.load(gate + r);
      ops.store(decay_in + r, run);
    }
  });
}

// The suffix scan shared by the key-side factors: for rows s = rows-1 .. 0 of [rows, d_k],
//   decay_s = first (.) prod_{s < j < rows} a_j,   decayed_s = k_s (.) decay_s,
// with `first` = a_rows (the gate of the row after the block) when gate_after is given, else ones.
template <class T>
void suffix_key_scan(int rows, int dk, int vw, const T* gate, const T* gate_after, const T* k, int ld_key, T* decay,
                     T* decayed) {
  for_channel_groups<T>(dk, vw, [&](int m, auto ops) {
    auto run = gate_after ? ops.load(gate_after + zu(m)) : ops.ones();
    for (int s = rows - 1; s >= 0; --s) {
      const std::size_t r = zu(s) * zu(dk) + zu(m);
      if (s < rows - 1) run = run * ops.load(gate + r + zu(dk));
      ops.store(decay + r, run);
      ops.store(decayed + r, ops.load(k + zu(s) * zu(ld_key) + zu(m)) * run);
    }
  });
}

// decay_out (suffix products excluding the row itself) and k_bar = k (.) decay_out, [L, d_k] each.
template <class T>
void chunk_key_factors(int L, int dk, int vw, const T* gate, const T* k, int ld_key, T* decay_out, T* k_bar) {
  suffix_key_scan<T>(L, dk, vw, gate, nullptr, k, ld_key, decay_out, k_bar);
}

// The query-side factors of one chunk: decay_sub (prefix products restarted at each sub-chunk's
// first row), q_rel = q (.) decay_sub and q_bar = scale q (.) decay_in, into the chunk scratch.
template <class T>
void chunk_query_factors(int L, int dk, int sub, int vw, T scale, const T* q, int ld_key, const ChunkDecays<T>& f,
                         ChunkScratch<T>& cs) {
  T* decay_sub = cs.decay_sub.data();
  T* q_rel = cs.q_rel.data();
  T* q_bar = cs.q_bar.data();
  for_channel_groups<T>(dk, vw, [&](int m, auto ops) {
    auto run = ops.ones();
    for (int t = 0; t < L; ++t) {
      const std::size_t r = zu(t) * zu(dk) + zu(m);
      const auto q_t = ops.load(q + zu(t) * zu(ld_key) + zu(m));
      run = t % sub == 0 ? ops.ones() : run * ops.load(f.gate + r);
      ops.store(decay_sub + r, run);
      ops.store(q_rel + r, q_t * run);
      ops.store(q_bar + r, scale * q_t * ops.load(f.decay_in + r));
    }
  });
}

// All gate factors of one chunk (the forward) into the chunk scratch; the gates are in cs.gate.
template <class T>
ChunkDecays<T> chunk_factors(int L, int dk, int sub, int vw, T scale, const T* q, const T* k, int ld_key,
                             ChunkScratch<T>& cs) {
  chunk_decay_in(L, dk, vw, cs.gate.data(), cs.decay_in.data());
  chunk_key_factors(L, dk, vw, cs.gate.data(), k, ld_key, cs.decay_out.data(), cs.k_bar.data());
  const ChunkDecays<T> f{cs.gate.data(), cs.decay_in.data(), cs.decay_out.data(), cs.k_bar.data()};
  chunk_query_factors(L, dk, sub, vw, scale, q, ld_key, f, cs);
  return f;
}

// For every sub-chunk starting at row i0 > 0: key_decay_s = exp(b_i0 - b_s) and k_rel_s = k_s (.)
// key_decay_s for every earlier row s < i0 of the chunk (suffix products of the gates up to i0),
// in the sub-chunk's block of cs.key_decay / cs.k_rel.
template <class T>
void sub_chunk_keys(int L, int dk, int sub, int vw, const T* k, int ld_key, const T* gate, ChunkScratch<T>& cs) {
  for (int i0 = sub; i0 < L; i0 += sub) {
    const std::size_t first = ChunkScratch<T>::key_block_row(i0, sub) * zu(dk);
    suffix_key_scan<T>(i0, dk, vw, gate, gate + zu(i0) * zu(dk), k, ld_key, cs.key_decay.data() + first,
                       cs.k_rel.data() + first);
  }
}

// One diagonal block of the scores, rows x rows from its first row (q, k, gate point at that row):
// A_ts = scale sum_m q_tm k_sm exp(b_tm - b_sm) for s <= t, written to A (ld lda) for s <= t only.
// The block's keys are kept transposed and decayed to the current row t,
//   KE[m][s] = k_sm exp(b_tm - b_sm)   ([d_k, rows] padded to whole groups of kLanes columns, zeros
//                                       in the columns of keys not reached yet),
// so that a row of A is scale sum_m q_tm KE[m][.]: d_k vector multiply-adds across the columns,
// each column summed over m in a fixed order, the same whatever the alignment or vector width (no
// horizontal reduction; one dot product per (t, s) pair was several times slower at d_k = 16).
// The columns are processed in W-byte parts (vector_width); a part whose columns are all > t is
// skipped at row t (its keys are not reached yet: a column's KE is set at its own row before any
// read), which does not change a column's operations.
template <class T, int W>
void diagonal_scores_in(int rows, int dk, T scale, const T* q, const T* k, int ld_key, const T* gate, T* KE, T* A,
                        int lda) {
  constexpr int part = W / static_cast<int>(sizeof(T));
  typedef T Vec __attribute__((vector_size(W)));
  typedef std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t> Index;
  typedef Index VecIndex __attribute__((vector_size(W)));
  VecIndex lane;
  for (int j = 0; j < part; ++j) lane[j] = j;
  const int groups = (rows + kLanes - 1) / kLanes;
  const std::size_t ld = zu(groups) * kLanes;
  std::fill_n(KE, zu(dk) * ld, T(0));
  for (int t = 0; t < rows; ++t) {
    const T* a_t = gate + zu(t) * zu(dk);
    const T* q_t = q + zu(t) * zu(ld_key);
    const T* k_t = k + zu(t) * zu(ld_key);
    T* A_t = A + zu(t) * zu(lda);
    // Only the parts holding columns s <= t are live.
    for (int c0 = 0; c0 <= t; c0 += part) {
      const bool current = t < c0 + part;
      const VecIndex is_t = lane == static_cast<Index>(t - c0);
      // Advances KE[m] by one row and returns q_tm KE[m].
      auto term = [&](int m) {
        T* ke = KE + zu(m) * ld + zu(c0);
        Vec x;
        std::memcpy(&x, ke, sizeof x);
        x = x * a_t[m];
        if (current) x = is_t ? Vec{} + k_t[m] : x;
        std::memcpy(ke, &x, sizeof x);
        return q_t[m] * x;
      };
      // Four partial sums over m (m mod 4, the remainder in the first), added in a fixed tree: four
      // independent multiply-add chains instead of one.
      Vec acc0 = {}, acc1 = {}, acc2 = {}, acc3 = {};
      int m = 0;
      for (; m + 4 <= dk; m += 4) {
        acc0 += term(m);
        acc1 += term(m + 1);
        acc2 += term(m + 2);
        acc3 += term(m + 3);
      }
      for (; m < dk; ++m) acc0 += term(m);
      const Vec acc = (acc0 + acc1) + (acc2 + acc3);
      const int live = current ? t - c0 + 1 : part;
      for (int j = 0; j < live; ++j) A_t[c0 + j] = scale * acc[j];
    }
  }
}
template <class T>
void diagonal_scores(int rows, int dk, int vw, T scale, const T* q, const T* k, int ld_key, const T* gate, T* KE, T* A,
                     int lda) {
  if (vw == 64)
    diagonal_scores_in<T, 64>(rows, dk, scale, q, k, ld_key, gate, KE, A, lda);
  else if (vw == 32)
    diagonal_scores_in<T, 32>(rows, dk, scale, q, k, ld_key, gate, KE, A, lda);
  else
    diagonal_scores_in<T, 16>(rows, dk, scale, q, k, ld_key, gate, KE, A, lda);
}

// The diagonal-block part of (D3) for one sub-chunk of `rows` rows (every pointer at its first row,
// dA with ld lda; only its lower triangle is read):
//   dq_t += sum_{s <= t} dA_ts k_s (.) exp(b_t - b_s),   dk_s += sum_{t >= s} dA_ts q_t (.) exp(b_t - b_s).
// Per channel group (for_channel_groups), each sum is built in registers over the other index in
// a fixed order (two partial sums taking alternate terms, added at the end), from rows decayed in
// place in run [rows, d_k]: run_s = k_s (.) exp(b_t - b_s) advanced by one gate per row t, then
// run_t = q_t (.) exp(b_t - b_s) advanced by one gate per row s going down.
template <class T>
void diagonal_gradients(int rows, int dk, int vw, const T* q, const T* k, int ld_key, const T* gate, const T* dA,
                        int lda, T* dq, T* dkk, T* run) {
  for_channel_groups<T>(dk, vw, [&](int m, auto ops) {
    auto at = [&](auto* base, std::size_t ld, int r) { return base + zu(r) * ld + zu(m); };
    const std::size_t ldk = zu(ld_key), ldg = zu(dk);
    for (int t = 0; t < rows; ++t) {
      const auto a = ops.load(at(gate, ldg, t));
      const auto x_t = ops.load(at(k, ldk, t));
      ops.store(at(run, ldg, t), x_t);
      auto acc0 = dA[zu(t) * zu(lda) + zu(t)] * x_t;
      decltype(acc0) acc1{};
      for (int s = 0; s < t; ++s) {
        const auto x = ops.load(at(run, ldg, s)) * a;
        ops.store(at(run, ldg, s), x);
        const auto term = dA[zu(t) * zu(lda) + zu(s)] * x;
        if (s % 2 == 0)
          acc1 = acc1 + term;
        else
          acc0 = acc0 + term;
      }
      T* y = at(dq, ldk, t);
      ops.store(y, ops.load(y) + (acc0 + acc1));
    }
    for (int s = rows - 1; s >= 0; --s) {
      const auto x_s = ops.load(at(q, ldk, s));
      ops.store(at(run, ldg, s), x_s);
      auto acc0 = dA[zu(s) * zu(lda) + zu(s)] * x_s;
      decltype(acc0) acc1{};
      if (s + 1 < rows) {
        const auto a = ops.load(at(gate, ldg, s + 1));
        for (int t = s + 1; t < rows; ++t) {
          const auto x = ops.load(at(run, ldg, t)) * a;
          ops.store(at(run, ldg, t), x);
          const auto term = dA[zu(t) * zu(lda) + zu(s)] * x;
          if ((t - s) % 2 == 1)
            acc1 = acc1 + term;
          else
            acc0 = acc0 + term;
        }
      }
      T* y = at(dkk, ldk, s);
      ops.store(y, ops.load(y) + (acc0 + acc1));
    }
  });
}

// (F3) with secondary chunking: A_ts = scale sum_m q_tm k_sm exp(b_tm - b_sm) for s <= t, else 0.
//   Off-diagonal blocks (query sub-chunk I from row i0, keys s < i0):
//     A[I, 0:i0] = scale (q_I (.) exp(b_I - b_i0)) (k_s (.) exp(b_i0 - b_s))^T      one GEMM
//   Diagonal blocks (s <= t in the same sub-chunk): elementwise, exp(b_t - b_s) as a running
//     product (diagonal_scores).
// Needs cs.q_rel (chunk_query_factors) and leaves the key blocks of sub_chunk_keys in cs.
template <class T>
void chunk_scores(int L, int dk, int sub, int vw, T scale, const T* q, const T* k, int ld_key, const T* gate,
                  ChunkScratch<T>& cs) {
  T* A = cs.scores.data();
  sub_chunk_keys(L, dk, sub, vw, k, ld_key, gate, cs);
  for (int i0 = 0; i0 < L; i0 += sub) {
    const int i1 = std::min(L, i0 + sub), rows = i1 - i0;
    if (i0 > 0)
      gemm(Trans::no, Trans::yes, rows, i0, dk, scale, cs.q_rel.data() + zu(i0) * zu(dk), dk,
           cs.k_rel.data() + ChunkScratch<T>::key_block_row(i0, sub) * zu(dk), dk, T(0), A + zu(i0) * zu(L), L);
    diagonal_scores(rows, dk, vw, scale, q + zu(i0) * zu(ld_key), k + zu(i0) * zu(ld_key), ld_key,
                    gate + zu(i0) * zu(dk), cs.diag_keys.data(), A + zu(i0) * zu(L) + zu(i0), L);
  }
  for (int t = 0; t < L; ++t) std::fill(A + zu(t) * zu(L) + zu(t) + 1, A + zu(t + 1) * zu(L), T(0));
}

// S <- Diag(exp(b_*)) S + K_bar^T V  (F5): the state leaving the chunk. v has row stride ld_value.
template <class T>
void chunk_state_update(int L, int dk, int dv, const T* v, int ld_value, const ChunkDecays<T>& f, T* S) {
  const T* last = f.decay_in + zu(L - 1) * zu(dk);
  for (int i = 0; i < dk; ++i) row_scale_into(dv, last[i], S + zu(i) * zu(dv));
  gemm(Trans::yes, Trans::no, dk, dv, L, T(1), f.k_bar, dk, v, ld_value, T(1), S, dv);
}

template <class T>
void load_state(const T* initial_state, std::size_t offset, std::size_t size, T* S) {
  if (initial_state)
    std::copy(initial_state + offset, initial_state + offset + size, S);
  else
    std::fill(S, S + size, T(0));
}

}  // namespace

template <class T>
void gla_recurrent_forward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, T* out,
                           GlaScalar<T>* final_state) {
  check_shape(shape);
  const int dk = shape.key_dim, dv = shape.value_dim;
  const std::size_t ld_key = zu(shape.heads) * zu(dk), ld_value = zu(shape.heads) * zu(dv);
  std::vector<T> S(zu(dk) * zu(dv));
  for (int b = 0; b < shape.batch; ++b)
    for (int h = 0; h < shape.heads; ++h) {
      const HeadOffsets off = head_offsets(shape, b, h);
      load_state(in.initial_state, off.state, S.size(), S.data());
      for (int t = 0; t < shape.seq_len; ++t) {
        const T* q_t = in.q + off.key + zu(t) * ld_key;
        const T* k_t = in.k + off.key + zu(t) * ld_key;
        const T* g_t = in.g + off.key + zu(t) * ld_key;
        const T* v_t = in.v + off.value + zu(t) * ld_value;
        T* o_t = out + off.value + zu(t) * ld_value;
        // S = Diag(exp(g_t)) S + k_t v_t^T
        for (int i = 0; i < dk; ++i) {
          const T a = math::exp(g_t[i]), ki = k_t[i];
          T* row = S.data() + zu(i) * zu(dv);
          for (int j = 0; j < dv; ++j) row[j] = a * row[j] + ki * v_t[j];
        }
        // o_t = scale S^T q_t
        std::fill(o_t, o_t + dv, T(0));
        for (int i = 0; i < dk; ++i) {
          const T c = scale * q_t[i];
          const T* row = S.data() + zu(i) * zu(dv);
          for (int j = 0; j < dv; ++j) o_t[j] += c * row[j];
        }
      }
      if (final_state) std::copy(S.begin(), S.end(), final_state + off.state);
    }
}

template <class T>
void gla_recurrent_backward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, const T* dout,
                            const GlaScalar<T>* dfinal_state, const GlaGradients<T>& grads) {
  check_shape(shape);
  const int dk = shape.key_dim, dv = shape.value_dim;
  const std::size_t ld_key = zu(shape.heads) * zu(dk), ld_value = zu(shape.heads) * zu(dv);
  std::vector<T> S(zu(dk) * zu(dv)), D(S.size()), gamma(zu(dk));
  for (int b = 0; b < shape.batch; ++b)
    for (int h = 0; h < shape.heads; ++h) {
      const HeadOffsets off = head_offsets(shape, b, h);
      // Forward sweep: S_t, and dq_t = scale S_t do_t (the only gradient that needs S_t itself).
      load_state(in.initial_state, off.state, S.size(), S.data());
      for (int t = 0; t < shape.seq_len; ++t) {
        const T* k_t = in.k + off.key + zu(t) * ld_key;
        const T* g_t = in.g + off.key + zu(t) * ld_key;
        const T* v_t = in.v + off.value + zu(t) * ld_value;
        const T* do_t = dout + off.value + zu(t) * ld_value;
        T* dq_t = grads.dq + off.key + zu(t) * ld_key;
        for (int i = 0; i < dk; ++i) {
          const T a = math::exp(g_t[i]), ki = k_t[i];
          T* row = S.data() + zu(i) * zu(dv);
          T acc = 0;
          for (int j = 0; j < dv; ++j) {
            row[j] = a * row[j] + ki * v_t[j];
            acc += row[j] * do_t[j];
          }
          dq_t[i] = scale * acc;
        }
      }
      // D = dL/dS_{T-1} from outside, gamma = rowsum(S_{T-1} (.) D): the final-state term of dg.
      load_state(dfinal_state, off.state, D.size(), D.data());
      for (int i = 0; i < dk; ++i) {
        T acc = 0;
        for (int j = 0; j < dv; ++j) acc += S[zu(i) * zu(dv) + zu(j)] * D[zu(i) * zu(dv) + zu(j)];
        gamma[zu(i)] = acc;
      }
      for (int t = shape.seq_len - 1; t >= 0; --t) {
        const T* q_t = in.q + off.key + zu(t) * ld_key;
        const T* k_t = in.k + off.key + zu(t) * ld_key;
        const T* g_t = in.g + off.key + zu(t) * ld_key;
        const T* v_t = in.v + off.value + zu(t) * ld_value;
        const T* do_t = dout + off.value + zu(t) * ld_value;
        const T* dq_t = grads.dq + off.key + zu(t) * ld_key;
        T* dk_t = grads.dk + off.key + zu(t) * ld_key;
        T* dg_t = grads.dg + off.key + zu(t) * ld_key;
        T* dv_t = grads.dv + off.value + zu(t) * ld_value;
        // D += scale q_t do_t^T: now D = dL/dS_t (the read-out at t plus everything later).
        // dk_t = D v_t, dv_t = D^T k_t (S_t = ... + k_t v_t^T).
        std::fill(dv_t, dv_t + dv, T(0));
        for (int i = 0; i < dk; ++i) {
          const T c = scale * q_t[i], ki = k_t[i];
          T* row = D.data() + zu(i) * zu(dv);
          T acc = 0;
          for (int j = 0; j < dv; ++j) {
            row[j] += c * do_t[j];
            acc += row[j] * v_t[j];
            dv_t[j] += ki * row[j];
          }
          dk_t[i] = acc;
        }
        // dg_t = sum_{u >= t} (q_u (.) dq_u - k_u (.) dk_u) + rowsum(S_{T-1} (.) dS_{T-1}); then
        // D = Diag(exp(g_t)) D = dL/dS_{t-1}.
        for (int i = 0; i < dk; ++i) {
          gamma[zu(i)] += q_t[i] * dq_t[i] - k_t[i] * dk_t[i];
          dg_t[i] = gamma[zu(i)];
          const T a = math::exp(g_t[i]);
          T* row = D.data() + zu(i) * zu(dv);
          for (int j = 0; j < dv; ++j) row[j] *= a;
        }
      }
      if (grads.dinitial_state) std::copy(D.begin(), D.end(), grads.dinitial_state + off.state);
    }
}

template <class T>
void gla_chunked_forward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, T* out,
                         GlaScalar<T>* final_state, const GlaChunking& chunking) {
  check_shape(shape);
  check_chunking(chunking);
  const int dk = shape.key_dim, dv = shape.value_dim, n = shape.seq_len;
  const int C = std::min(chunking.chunk_size, std::max(n, 1)), sub = chunking.sub_chunk_size;
  const int vw = vector_width(chunking);
  const int ld_key = shape.heads * dk, ld_value = shape.heads * dv;
  ChunkedWorkspace<T>& ws = chunked_workspace<T>(C, sub, 0, dk, dv);
  ChunkScratch<T>& cs = ws.chunk;
  T* S = ws.S.data();
  const std::size_t state_size = zu(dk) * zu(dv);
  for (int b = 0; b < shape.batch; ++b)
    for (int h = 0; h < shape.heads; ++h) {
      const HeadOffsets off = head_offsets(shape, b, h);
      load_state(in.initial_state, off.state, state_size, S);
      for (int t0 = 0; t0 < n; t0 += C) {
        const int L = std::min(C, n - t0);
        const T* q = in.q + off.key + zu(t0) * zu(ld_key);
        const T* k = in.k + off.key + zu(t0) * zu(ld_key);
        const T* g = in.g + off.key + zu(t0) * zu(ld_key);
        const T* v = in.v + off.value + zu(t0) * zu(ld_value);
        T* o = out + off.value + zu(t0) * zu(ld_value);
        chunk_gates(L, dk, g, ld_key, cs.gate.data());
        const ChunkDecays<T> f = chunk_factors(L, dk, sub, vw, scale, q, k, ld_key, cs);
        chunk_scores(L, dk, sub, vw, scale, q, k, ld_key, f.gate, cs);
        // (F2) O = Q_bar S_in: [L, d_k] x [d_k, d_v];  (F4) O += A V: [L, L] x [L, d_v].
        gemm(Trans::no, Trans::no, L, dv, dk, T(1), cs.q_bar.data(), dk, S, dv, T(0), o, ld_value);
        gemm(Trans::no, Trans::no, L, dv, L, T(1), cs.scores.data(), L, v, ld_value, T(1), o, ld_value);
        chunk_state_update(L, dk, dv, v, ld_value, f, S);
      }
      if (final_state) std::copy_n(S, state_size, final_state + off.state);
    }
}

template <class T>
void gla_chunked_backward(const GlaShape& shape, GlaScalar<T> scale, const GlaInputs<T>& in, const T* dout,
                          const GlaScalar<T>* dfinal_state, const GlaGradients<T>& grads, const GlaChunking& chunking) {
  check_shape(shape);
  check_chunking(chunking);
  const int dk = shape.key_dim, dv = shape.value_dim, n = shape.seq_len;
  const int C = std::min(chunking.chunk_size, std::max(n, 1)), sub = chunking.sub_chunk_size;
  const int vw = vector_width(chunking);
  const int ld_key = shape.heads * dk, ld_value = shape.heads * dv;
  const int num_chunks = (n + C - 1) / C;
  const std::size_t state_size = zu(dk) * zu(dv);
  ChunkedWorkspace<T>& ws = chunked_workspace<T>(C, sub, n, dk, dv);
  ChunkScratch<T>& cs = ws.chunk;
  T* S = ws.S.data();
  T* dH = ws.dH.data();
  for (int b = 0; b < shape.batch; ++b)
    for (int h = 0; h < shape.heads; ++h) {
      const HeadOffsets off = head_offsets(shape, b, h);
      // The gate factors of the chunk from row t0, rows [t0, t0 + L) of the per-head arrays.
      auto decays = [&](int t0) {
        const std::size_t first = zu(t0) * zu(dk);
        return ChunkDecays<T>{ws.head_gate.data() + first, ws.head_decay_in.data() + first,
                              ws.head_decay_out.data() + first, ws.head_k_bar.data() + first};
      };
      // State sweep: S_in(c) of every chunk, and the gate factors the reverse sweep reuses.
      load_state(in.initial_state, off.state, state_size, S);
      for (int c = 0; c < num_chunks; ++c) {
        const int t0 = c * C, L = std::min(C, n - t0);
        std::copy_n(S, state_size, ws.entering.begin() + static_cast<std::ptrdiff_t>(zu(c) * state_size));
        const T* k = in.k + off.key + zu(t0) * zu(ld_key);
        const T* g = in.g + off.key + zu(t0) * zu(ld_key);
        const T* v = in.v + off.value + zu(t0) * zu(ld_value);
        const std::size_t first = zu(t0) * zu(dk);
        T* gate = ws.head_gate.data() + first;
        T* decay_in = ws.head_decay_in.data() + first;
        T* decay_out = ws.head_decay_out.data() + first;
        T* k_bar = ws.head_k_bar.data() + first;
        chunk_gates(L, dk, g, ld_key, gate);
        chunk_decay_in(L, dk, vw, gate, decay_in);
        chunk_key_factors(L, dk, vw, gate, k, ld_key, decay_out, k_bar);
        chunk_state_update(L, dk, dv, v, ld_value, decays(t0), S);
      }
      // Reverse sweep; dH = dL/dS_out(c) from outside the chunk (later chunks and dS_T).
      load_state(dfinal_state, off.state, state_size, dH);
      for (int c = num_chunks - 1; c >= 0; --c) {
        const int t0 = c * C, L = std::min(C, n - t0);
        const T* q = in.q + off.key + zu(t0) * zu(ld_key);
        const T* k = in.k + off.key + zu(t0) * zu(ld_key);
        const T* v = in.v + off.value + zu(t0) * zu(ld_value);
        const T* dO = dout + off.value + zu(t0) * zu(ld_value);
        T* dq = grads.dq + off.key + zu(t0) * zu(ld_key);
        T* dkk = grads.dk + off.key + zu(t0) * zu(ld_key);
        T* dg = grads.dg + off.key + zu(t0) * zu(ld_key);
        T* dV = grads.dv + off.value + zu(t0) * zu(ld_value);
        const T* S_in = ws.entering.data() + zu(c) * state_size;
        const ChunkDecays<T> f = decays(t0);
        chunk_query_factors(L, dk, sub, vw, scale, q, ld_key, f, cs);
        chunk_scores(L, dk, sub, vw, scale, q, k, ld_key, f.gate, cs);

        // (D1) dV = A^T dO + K_bar dH: [L, L]^T x [L, d_v] + [L, d_k] x [d_k, d_v].
        gemm(Trans::yes, Trans::no, L, dv, L, T(1), cs.scores.data(), L, dO, ld_value, T(0), dV, ld_value);
        gemm(Trans::no, Trans::no, L, dv, dk, T(1), f.k_bar, dk, dH, dv, T(1), dV, ld_value);

        // (D2) dA_ts = scale (do_t . v_s), needed for s <= t only ((D3) reads nothing else): per
        // block of 16 rows [r0, r1), [16, d_v] x [d_v, r1]; the rest of the upper triangle is
        // neither formed nor zeroed. (One [L, L] product took OpenBLAS's packing path at L = 64;
        // `perf` share of its packed sgemm 17.6 % -> 6.5 % of the kernel, small kernels +9 points.)
        T* dA = cs.dscores.data();
        for (int r0 = 0; r0 < L; r0 += 16) {
          const int r1 = std::min(L, r0 + 16);
          gemm(Trans::no, Trans::yes, r1 - r0, r1, dv, scale, dO + zu(r0) * zu(ld_value), ld_value, v, ld_value, T(0),
               dA + zu(r0) * zu(L), L);
        }

        // (D4) inter-chunk parts: dq_t = scale exp(b_t) (.) (S_in do_t), dk_t = exp(b_* - b_t) (.) (dH v_t).
        gemm(Trans::no, Trans::yes, L, dk, dv, scale, dO, ld_value, S_in, dv, T(0), dq, ld_key);
        gemm(Trans::no, Trans::yes, L, dk, dv, T(1), v, ld_value, dH, dv, T(0), dkk, ld_key);
        // rho = rowsum(S_out (.) dH) = exp(b_*) (.) rowsum(S_in (.) dH) + sum_t k_t (.) dk_t^inter.
        const T* decay_last = f.decay_in + zu(L - 1) * zu(dk);
        T* rho = cs.rho.data();
        for (int i = 0; i < dk; ++i)
          rho[i] = decay_last[i] * lane_dot<LaneOrder::tree, T>(S_in + zu(i) * zu(dv), dH + zu(i) * zu(dv), zu(dv));
        for_channel_groups<T>(dk, vw, [&](int m, auto ops) {
          auto run = ops.load(rho + m);
          for (int t = 0; t < L; ++t) {
            const std::size_t rk = zu(t) * zu(ld_key) + zu(m), rf = zu(t) * zu(dk) + zu(m);
            ops.store(dq + rk, ops.load(dq + rk) * ops.load(f.decay_in + rf));
            const auto dk_t = ops.load(dkk + rk) * ops.load(f.decay_out + rf);
            ops.store(dkk + rk, dk_t);
            run = run + ops.load(k + rk) * dk_t;
          }
          ops.store(rho + m, run);
        });

        // (D3) intra-chunk parts, with the sub-chunk factorisation of chunk_scores (whose key blocks
        // are still in cs):
        //   dq_t += sum_{s <= t} dA_ts k_s (.) exp(b_t - b_s),  dk_s += sum_{t >= s} dA_ts q_t (.) exp(b_t - b_s).
        for (int i0 = 0; i0 < L; i0 += sub) {
          const int i1 = std::min(L, i0 + sub), rows = i1 - i0;
          if (i0 > 0) {
            const std::size_t first = ChunkScratch<T>::key_block_row(i0, sub) * zu(dk);
            // dq_I += exp(b_I - b_i0) (.) (dA[I, 0:i0] K_rel): [rows, i0] x [i0, d_k].
            gemm(Trans::no, Trans::no, rows, dk, i0, T(1), dA + zu(i0) * zu(L), L, cs.k_rel.data() + first, dk, T(0),
                 cs.block_q.data(), dk);
            // dk_s += exp(b_i0 - b_s) (.) (dA[I, 0:i0]^T Q_rel_I) for s < i0: [i0, rows] x [rows, d_k].
            gemm(Trans::yes, Trans::no, i0, dk, rows, T(1), dA + zu(i0) * zu(L), L, cs.q_rel.data() + zu(i0) * zu(dk),
                 dk, T(0), cs.block_k.data(), dk);
            for (int t = i0; t < i1; ++t)
              row_add_mul(dk, cs.decay_sub.data() + zu(t) * zu(dk), cs.block_q.data() + zu(t - i0) * zu(dk),
                          dq + zu(t) * zu(ld_key));
            for (int s = 0; s < i0; ++s)
              row_add_mul(dk, cs.key_decay.data() + first + zu(s) * zu(dk), cs.block_k.data() + zu(s) * zu(dk),
                          dkk + zu(s) * zu(ld_key));
          }
          diagonal_gradients(rows, dk, vw, q + zu(i0) * zu(ld_key), k + zu(i0) * zu(ld_key), ld_key,
                             f.gate + zu(i0) * zu(dk), dA + zu(i0) * zu(L) + zu(i0), L, dq + zu(i0) * zu(ld_key),
                             dkk + zu(i0) * zu(ld_key), cs.diag_run.data());
        }

        // (D6) dg_t = sum_{u >= t in the chunk} (q_u (.) dq_u - k_u (.) dk_u) + rho.
        for_channel_groups<T>(dk, vw, [&](int m, auto ops) {
          auto run = ops.load(rho + m);
          for (int t = L - 1; t >= 0; --t) {
            const std::size_t r = zu(t) * zu(ld_key) + zu(m);
            run = run + (ops.load(q + r) * ops.load(dq + r) - ops.load(k + r) * ops.load(dkk + r));
            ops.store(dg + r, run);
          }
        });

        // dH(c-1) = Diag(exp(b_*)) dH(c) + Q_bar^T dO: [L, d_k]^T x [L, d_v].
        for (int i = 0; i < dk; ++i) row_scale_into(dv, decay_last[i], dH + zu(i) * zu(dv));
        gemm(Trans::yes, Trans::no, dk, dv, L, T(1), cs.q_bar.data(), dk, dO, ld_value, T(1), dH, dv);
      }
      if (grads.dinitial_state) std::copy_n(dH, state_size, grads.dinitial_state + off.state);
    }
}

#define EXPT_INSTANTIATE_GLA(T)                                                                              \
  template void gla_recurrent_forward<T>(const GlaShape&, T, const GlaInputs<T>&, T*, T*);                   \
  template void gla_recurrent_backward<T>(const GlaShape&, T, const GlaInputs<T>&, const T*, const T*,       \
                                          const GlaGradients<T>&);                                           \
  template void gla_chunked_forward<T>(const GlaShape&, T, const GlaInputs<T>&, T*, T*, const GlaChunking&); \
  template void gla_chunked_backward<T>(const GlaShape&, T, const GlaInputs<T>&, const T*, const T*,         \
                                        const GlaGradients<T>&, const GlaChunking&);

EXPT_INSTANTIATE_GLA(float)
EXPT_INSTANTIATE_GLA(double)

#undef EXPT_INSTANTIATE_GLA

}  // namespace expt::kernels
