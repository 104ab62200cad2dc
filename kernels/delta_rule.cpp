#include "kernels/delta_rule.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/elementwise_math.hpp"
#include "kernels/gemm.hpp"
#include "kernels/prefetch.hpp"
#include "kernels/reduction.hpp"

namespace expt::kernels {

namespace {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

std::size_t sz(long n) { return static_cast<std::size_t>(n); }

// Pointers to token 0 of one (batch, head) slice and the row strides that step one token, so every
// per-head routine below reads row t of q as q + t * ld_qk.
template <class T>
struct HeadSlice {
  const T* q;
  const T* k;
  const T* v;
  const T* beta;
  const T* g;              // nullptr: ungated
  const T* initial_state;  // nullptr: zero
  int ld_qk, ld_v, ld_gate;
  // Virtual steps per token (1: the plain delta rule). With steps > 1, k, v and beta have one row
  // per virtual step t * steps + j and q, g one per token t (the interleaved form below; only the
  // chunked kernels take it).
  int steps;

  // The gate of virtual step p: g of its token at the token's first step, 0 at the others.
  T gate(int p) const { return g && p % steps == 0 ? g[sz(p / steps) * sz(ld_gate)] : T(0); }
};

// s.seq_len counts tokens; the head has s.seq_len * steps virtual steps.
template <class T>
HeadSlice<T> head_slice(const DeltaRuleShape& s, const DeltaRuleInputs<T>& in, int b, int h, int steps = 1) {
  const std::size_t token0 = sz(b) * sz(s.seq_len) * sz(s.heads) + sz(h);
  const std::size_t step0 = sz(b) * sz(s.seq_len) * sz(steps) * sz(s.heads) + sz(h);
  const std::size_t state = (sz(b) * sz(s.heads) + sz(h)) * sz(s.key_dim) * sz(s.value_dim);
  return {in.q + token0 * sz(s.key_dim),
          in.k + step0 * sz(s.key_dim),
          in.v + step0 * sz(s.value_dim),
          in.beta + step0,
          in.g ? in.g + token0 : nullptr,
          in.initial_state ? in.initial_state + state : nullptr,
          s.heads * s.key_dim,
          s.heads * s.value_dim,
          s.heads,
          steps};
}

// ---------------------------------------------------------------------------------------------
// Recurrent reference
// ---------------------------------------------------------------------------------------------

// One step t of the recurrence on the state S [dk, dv] in place:
//   S' = a_t S,  u = beta_t (v_t - S'^T k_t),  S = S' + k_t u^T.
template <class T>
void recurrent_step(const HeadSlice<T>& x, int t, int dk, int dv, Eigen::Map<Mat<T>>& S, Vec<T>& u) {
  const Eigen::Map<const Vec<T>> k(x.k + sz(t) * sz(x.ld_qk), dk);
  const Eigen::Map<const Vec<T>> v(x.v + sz(t) * sz(x.ld_v), dv);
  const T beta = x.beta[sz(t) * sz(x.ld_gate)];
  if (x.g) S *= math::exp(x.g[sz(t) * sz(x.ld_gate)]);
  u.noalias() = beta * (v - S.transpose() * k);
  S.noalias() += k * u.transpose();
}

template <class T>
void recurrent_forward_head(const HeadSlice<T>& x, int n, int dk, int dv, T scale, T* out, int ld_out, T* state) {
  Eigen::Map<Mat<T>> S(state, dk, dv);
  if (x.initial_state)
    S = Eigen::Map<const Mat<T>>(x.initial_state, dk, dv);
  else
    S.setZero();
  Vec<T> u(dv);
  for (int t = 0; t < n; ++t) {
    recurrent_step(x, t, dk, dv, S, u);
    // o_t = s S_t^T q_t
    const Eigen::Map<const Vec<T>> q(x.q + sz(t) * sz(x.ld_qk), dk);
    Eigen::Map<Vec<T>>(out + sz(t) * sz(ld_out), dv).noalias() = scale * (S.transpose() * q);
  }
}

// Reverse-time backward of one head (docs/derivations/delta_rule.md "Recurrent backward"). With
// D = dL/dS_t, walking t = T-1 .. 0:
//   D   += s q_t do_t^T ;          dq_t = s S_t do_t
//   du   = D^T k_t
//   dk_t = D u_t - beta_t S' du ;  dv_t = beta_t du ;  dbeta_t = du . e_t   (e_t = v_t - S'^T k_t)
//   D'   = D - beta_t k_t du^T     (dL/dS', S' = a_t S_{t-1})
//   dg_t = sum(S' (.) D')          (d a_t / d g_t = a_t folds into S' = a_t S_{t-1})
//   D    = a_t D'                  (dL/dS_{t-1})
// The states S_{t-1} come from checkpoints every `segment` steps: the forward keeps S before each
// segment, the reverse sweep recomputes the states of one segment at a time.
template <class T>
void recurrent_backward_head(const HeadSlice<T>& x, int n, int dk, int dv, T scale, const T* dout, int ld_out,
                             const T* dfinal_state, T* dq, T* dk_out, T* dv_out, T* dbeta, T* dg, T* dinitial_state) {
  const int segment = kDeltaRuleDefaultChunk;
  const int segments = (n + segment - 1) / segment;
  const std::size_t state_size = sz(dk) * sz(dv);
  std::vector<T> checkpoints(sz(segments) * state_size);
  std::vector<T> states(sz(segment + 1) * state_size);  // S_{t0-1} .. S_{t1-1} of one segment
  Vec<T> u(dv), e(dv), du(dv);

  {
    Eigen::Map<Mat<T>> S(states.data(), dk, dv);
    if (x.initial_state)
      S = Eigen::Map<const Mat<T>>(x.initial_state, dk, dv);
    else
      S.setZero();
    for (int t = 0; t < n; ++t) {
      if (t % segment == 0) std::copy_n(states.data(), state_size, checkpoints.data() + sz(t / segment) * state_size);
      recurrent_step(x, t, dk, dv, S, u);
    }
  }

  Mat<T> D(dk, dv), S_prime(dk, dv);
  if (dfinal_state)
    D = Eigen::Map<const Mat<T>>(dfinal_state, dk, dv);
  else
    D.setZero();
  for (int c = segments - 1; c >= 0; --c) {
    const int t0 = c * segment, t1 = std::min(n, t0 + segment);
    std::copy_n(checkpoints.data() + sz(c) * state_size, state_size, states.data());
    for (int t = t0; t < t1; ++t) {
      std::copy_n(states.data() + sz(t - t0) * state_size, state_size, states.data() + sz(t - t0 + 1) * state_size);
      Eigen::Map<Mat<T>> S(states.data() + sz(t - t0 + 1) * state_size, dk, dv);
      recurrent_step(x, t, dk, dv, S, u);
    }
    for (int t = t1 - 1; t >= t0; --t) {
      const Eigen::Map<const Mat<T>> S_prev(states.data() + sz(t - t0) * state_size, dk, dv);
      const Eigen::Map<const Mat<T>> S_t(states.data() + sz(t - t0 + 1) * state_size, dk, dv);
      const Eigen::Map<const Vec<T>> q(x.q + sz(t) * sz(x.ld_qk), dk);
      const Eigen::Map<const Vec<T>> k(x.k + sz(t) * sz(x.ld_qk), dk);
      const Eigen::Map<const Vec<T>> v(x.v + sz(t) * sz(x.ld_v), dv);
      const Eigen::Map<const Vec<T>> d_o(dout + sz(t) * sz(ld_out), dv);
      const T beta = x.beta[sz(t) * sz(x.ld_gate)];
      const T a = x.g ? math::exp(x.g[sz(t) * sz(x.ld_gate)]) : T(1);
      S_prime = a * S_prev;
      e.noalias() = v - S_prime.transpose() * k;
      u = beta * e;

      D.noalias() += scale * q * d_o.transpose();
      Eigen::Map<Vec<T>>(dq + sz(t) * sz(x.ld_qk), dk).noalias() = scale * (S_t * d_o);
      du.noalias() = D.transpose() * k;
      Eigen::Map<Vec<T>> dk_t(dk_out + sz(t) * sz(x.ld_qk), dk);
      dk_t.noalias() = D * u;
      dk_t.noalias() -= beta * (S_prime * du);
      Eigen::Map<Vec<T>>(dv_out + sz(t) * sz(x.ld_v), dv) = beta * du;
      dbeta[sz(t) * sz(x.ld_gate)] = du.dot(e);
      D.noalias() -= beta * k * du.transpose();
      if (dg) dg[sz(t) * sz(x.ld_gate)] = S_prime.cwiseProduct(D).sum();
      D *= a;
    }
  }
  if (dinitial_state) Eigen::Map<Mat<T>>(dinitial_state, dk, dv) = D;
}

// ---------------------------------------------------------------------------------------------
// Chunked WY / UT form
// ---------------------------------------------------------------------------------------------
//
// One chunk of L tokens (rows i = 0..L-1 of Q, K [L, dk], V [L, dv]), entering state S_in:
//   gamma_i = g_0 + ... + g_i          (local inclusive cumsum; 0 without a gate), Gamma_i = exp(gamma_i)
//   decay_ij = exp(gamma_i - gamma_j)  for i >= j, 0 above the diagonal (exponent <= 0 for g <= 0; the
//                                      upper triangle is never evaluated, docs/derivations/delta_rule.md)
//   Lmat = tril(diag(beta) K K^T (.) decay, -1),   A = (I + Lmat)^{-1}  (unit lower; (U1), (U2))
//   Kb = diag(beta Gamma) K,  Vb = diag(beta) V,  W = A Kb,  U = A Vb                        (U3)
//   Ũ = U - W S_in                                 (the pseudo-values u_i of the recurrence; (U4))
//   P = (Q K^T) (.) decay                          (causal, diagonal included)
//   O = s [diag(Gamma) Q S_in + P Ũ]                                                         (U5)
//   S_out = Gamma_{L-1} S_in + Kd^T Ũ,  Kd = diag(exp(gamma_{L-1} - gamma)) K                (U6)
// Why: inside the chunk S_i = Gamma_i S_in + sum_{j<=i} exp(gamma_i - gamma_j) k_j u_j^T, and
// substituting it into u_i = beta_i (v_i - a_i S_{i-1}^T k_i) gives (I + Lmat) Ũ = Vb - Kb S_in.
//
// Interleaved sequences (DeltaProduct, steps = n_h > 1): the rows above are virtual steps, and the
// query, output and gate exist once per token: q_r and o_r at row t*n_h + n_h - 1 (the other rows'
// queries are zero, their outputs dropped), g_r at row t*n_h (0 elsewhere). So Q, P, O and dO only
// have the chunk's query rows (QueryRows below), read from and written to the per-token buffers
// directly: the query-side products shrink by n_h and no virtual copies are made.

// The query rows of the chunk of L virtual steps starting at t0: tokens r0 .. r0 + count - 1, token
// r0 + r at chunk row first + r * steps (its last virtual step).
struct QueryRows {
  int r0 = 0, count = 0, first = 0;
};
QueryRows query_rows(int t0, int L, int steps) {
  const int r0 = t0 / steps, r_end = (t0 + L) / steps;
  return {r0, r_end - r0, r0 * steps + steps - 1 - t0};
}

// Prefetches (kernels/prefetch.hpp) the inputs of the chunk of L virtual steps starting at t0: its
// rows of k, v and beta, its tokens' rows of q (and of g when gated).
template <class T>
[[gnu::always_inline]] inline void prefetch_chunk_inputs(const HeadSlice<T>& x, int t0, int L, int dk, int dv) {
  prefetch_rows(x.k + sz(t0) * sz(x.ld_qk), L, dk, sz(x.ld_qk));
  prefetch_rows(x.v + sz(t0) * sz(x.ld_v), L, dv, sz(x.ld_v));
  prefetch_rows(x.beta + sz(t0) * sz(x.ld_gate), 1, L * x.ld_gate, 0);
  const QueryRows rows = query_rows(t0, L, x.steps);
  prefetch_rows(x.q + sz(rows.r0) * sz(x.ld_qk), rows.count, dk, sz(x.ld_qk));
  if (x.g) prefetch_rows(x.g + sz(rows.r0) * sz(x.ld_gate), 1, rows.count * x.ld_gate, 0);
}

// The backward's chunk of L virtual steps at t0: its inputs, its query rows of dO, and the rows of
// dq, dk and dv it writes (fetched for writing).
template <class T>
[[gnu::always_inline]] inline void prefetch_chunk_backward(const HeadSlice<T>& x, int t0, int L, int dk, int dv,
                                                           const T* dout, int ld_out, const T* dq, const T* dk_out,
                                                           const T* dv_out) {
  prefetch_chunk_inputs(x, t0, L, dk, dv);
  const QueryRows rows = query_rows(t0, L, x.steps);
  prefetch_rows(dout + sz(rows.r0) * sz(ld_out), rows.count, dv, sz(ld_out));
  prefetch_rows(dq + sz(rows.r0) * sz(x.ld_qk), rows.count, dk, sz(x.ld_qk), true);
  prefetch_rows(dk_out + sz(t0) * sz(x.ld_qk), L, dk, sz(x.ld_qk), true);
  prefetch_rows(dv_out + sz(t0) * sz(x.ld_v), L, dv, sz(x.ld_v), true);
}

// gemm that accepts an empty inner dimension (a chunk without query rows): C = beta C.
template <class T>
void product(Trans ta, Trans tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
             int ldc) {
  if (K > 0) {
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) C[sz(i) * sz(ldc) + sz(j)] *= beta;
}

// Scratch of one chunk, sized for the longest chunk and reused; every L x L matrix is stored densely
// with row stride L of the current chunk. The costly factors (K K^T, A, Ũ) live in a slot (`kkt`,
// `a`, `u_new` point into it): the forward's own, or the backward's per-chunk cache, filled by its
// state sweep and read again by its reverse sweep.
template <class T>
struct ChunkScratch {
  int dk = 0, dv = 0;
  std::vector<T> gamma, decay, lmat, kb, rhs, kd, scores, slot;
  T* kkt = nullptr;
  T* a = nullptr;
  T* u_new = nullptr;
  // Kd = diag(exp(gamma_{L-1} - gamma)) K: the `kd` buffer (row stride dk) when gated; without a
  // gate every factor is 1 and Kd is K itself, read in place (row stride ld_qk).
  const T* kd_rows = nullptr;
  int ld_kd = 0;
  // backward only
  std::vector<T> du, d_scores, d_gamma, do_gated, dq_state, dkd, x, y, dl, dl_transposed;
  std::vector<T> ones;  // [chunk] all 1: the decay row of an ungated chunk where an expression needs one

  static std::size_t slot_size(int chunk, int value_dim) {
    return 2 * sz(chunk) * sz(chunk) + sz(chunk) * sz(value_dim);
  }
  // Grows the buffers to fit chunks of `chunk` virtual steps (never shrinks them).
  void fit(int chunk, int key_dim, int value_dim, bool backward) {
    dk = key_dim;
    dv = value_dim;
    const std::size_t cc = sz(chunk) * sz(chunk), ck = sz(chunk) * sz(dk), cv = sz(chunk) * sz(dv);
    for (auto [buf, n] : {std::pair{&gamma, sz(chunk)},
                          {&decay, cc},
                          {&lmat, cc},
                          {&kb, ck},
                          {&rhs, cv},
                          {&kd, ck},
                          {&scores, cc},
                          {&slot, slot_size(chunk, dv)}})
      grow(*buf, n);
    if (!backward) return;
    for (auto [buf, n] : {std::pair{&du, cv},
                          {&d_scores, cc},
                          {&d_gamma, sz(chunk)},
                          {&do_gated, cv},
                          {&dq_state, ck},
                          {&dkd, ck},
                          {&x, ck},
                          {&y, cv},
                          {&dl, cc},
                          {&dl_transposed, cc}})
      grow(*buf, n);
    if (ones.size() < sz(chunk)) ones.assign(sz(chunk), T(1));
  }
  static void grow(std::vector<T>& buf, std::size_t n) {
    if (buf.size() < n) buf.resize(n);
  }
};

// Per-thread scratch of the chunked kernels, kept from call to call so that a call neither
// allocates nor touches fresh pages (the per-call vectors cost about 9 % of the kernel in page
// faults and zeroing). Every element is written before it is read within a call, so neither the
// old contents nor the buffers' addresses can reach a result. DeltaProduct calls the delta-rule
// kernels but never from inside one, so one workspace per thread and type suffices.
template <class T>
struct ChunkedWorkspace {
  ChunkScratch<T> chunk;
  std::vector<T> state;     // [dk, dv] the running state of the forward
  std::vector<T> entering;  // [chunks + 1, dk, dv] S_in of every chunk of one head (backward)
  std::vector<T> factors;   // [chunks, slot_size] the factor slots of one head (backward)
  std::vector<T> dh;        // [dk, dv] dL/dS_out of the current chunk (backward)
};

template <class T>
ChunkedWorkspace<T>& chunked_workspace() {
  thread_local ChunkedWorkspace<T> ws;
  return ws;
}

// Fixed-order reductions for the chunked kernels, all in LaneOrder::in_order_then_tail
// (kernels/reduction.hpp): 16 running partial sums (element m of every whole block of 16 goes to
// lane m % 16), the lanes added 0..15 in order, then the remaining elements in order. The order
// depends only on the length, never on where the buffers lie (Eigen's dot starts its vector loop at
// the first aligned element), and the lanes are one vector value.
constexpr int kLanes = static_cast<int>(kSumLanes);
constexpr LaneOrder kOrder = LaneOrder::in_order_then_tail;

// sum_m a[m] b[m]. The products accumulate as an Eigen array expression, not as Lanes<T> or
// lane_dot: those forms round some products differently (GCC fuses a multiply and an add into an
// fma in some of these forms and not in others: lane_dot changed the float results, Lanes<T> the
// double ones), and the kernel's results, the delta-rule models' losses among them, stay as they
// were.
template <class T>
T dot(const T* a, const T* b, int n) {
  using ArrayLanes = Eigen::Array<T, kLanes, 1>;
  ArrayLanes part = ArrayLanes::Zero();
  int m = 0;
  for (; m + kLanes <= n; m += kLanes)
    part += Eigen::Map<const ArrayLanes>(a + m) * Eigen::Map<const ArrayLanes>(b + m);
  T sum = fold_lanes<kOrder, T>(part);
  for (; m < n; ++m) sum += a[m] * b[m];
  return sum;
}

// Gate terms of one row of P (scores row p, its gradient dp, decay row d, over columns j < n):
// term_j = p_j dp_j is subtracted from dgam_j and its sum returned (for dgam_i); dp_j *= d_j.
template <class T>
T score_gate_terms(const T* p, T* dp, const T* d, T* dgam, int n) {
  Lanes<T> part = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    Lanes<T> pj, dpj, dj, gj;
    load_lanes(p + j, pj);
    load_lanes(dp + j, dpj);
    load_lanes(d + j, dj);
    load_lanes(dgam + j, gj);
    const Lanes<T> term = pj * dpj;
    part += term;
    store_lanes(dgam + j, gj - term);
    store_lanes(dp + j, dpj * dj);
  }
  T sum = fold_lanes<kOrder, T>(part);
  for (; j < n; ++j) {
    const T term = p[j] * dp[j];
    sum += term;
    dgam[j] -= term;
    dp[j] *= d[j];
  }
  return sum;
}

// One row i of dLmat (e, columns j < n = i) through Lmat_ij = b (k_i . k_j) decay_ij: returns
// sum_j e_j kkt_j d_j (for dbeta_i) and adds sum_j lmat_j e_j to *gate_row (for dgam_i),
// subtracting each term from dgam_j; then e_j <- e_j b d_j (E of chunk_backward).
template <class T>
T lmat_terms(T* e, const T* kkt, const T* lmat, const T* d, T b, T* dgam, int n, T* gate_row) {
  Lanes<T> part_beta = {}, part_gate = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    Lanes<T> dj, ej, kktj, lj, gj;
    load_lanes(d + j, dj);
    load_lanes(e + j, ej);
    load_lanes(kkt + j, kktj);
    load_lanes(lmat + j, lj);
    load_lanes(dgam + j, gj);
    part_beta += ej * kktj * dj;
    const Lanes<T> term = lj * ej;
    part_gate += term;
    store_lanes(dgam + j, gj - term);
    store_lanes(e + j, ej * (b * dj));
  }
  T sum_beta = fold_lanes<kOrder, T>(part_beta), sum_gate = fold_lanes<kOrder, T>(part_gate);
  for (; j < n; ++j) {
    sum_beta += e[j] * kkt[j] * d[j];
    const T term = lmat[j] * e[j];
    sum_gate += term;
    dgam[j] -= term;
    e[j] *= b * d[j];
  }
  *gate_row += sum_gate;
  return sum_beta;
}

// lmat_terms without the gate's gradient: returns sum_j e_j kkt_j d_j and sets e_j <- e_j b d_j.
template <class T>
T lmat_beta_terms(T* e, const T* kkt, const T* d, T b, int n) {
  Lanes<T> part_beta = {};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    Lanes<T> dj, ej, kktj;
    load_lanes(d + j, dj);
    load_lanes(e + j, ej);
    load_lanes(kkt + j, kktj);
    part_beta += ej * kktj * dj;
    store_lanes(e + j, ej * (b * dj));
  }
  T sum_beta = fold_lanes<kOrder, T>(part_beta);
  for (; j < n; ++j) {
    sum_beta += e[j] * kkt[j] * d[j];
    e[j] *= b * d[j];
  }
  return sum_beta;
}

// Blocks of the forward substitution in chunk_factors: columns [m, m + 16) of a row of A.
constexpr int kSubstitutionBlock = 16;

// Rows j in [j_begin, j_end) into the first Active of the block sums s (block b: columns
// m_first + 16 b ..): s_b -= l_i[j] A_j[block b].
template <class T, int Active>
void substitute_rows(Eigen::Matrix<T, kSubstitutionBlock, 1>* s, const T* l_i, const T* A, int L, int m_first,
                     int j_begin, int j_end) {
  using Block = Eigen::Matrix<T, kSubstitutionBlock, 1>;
  for (int j = j_begin; j < j_end; ++j) {
    const T l = l_i[j];
    const T* a_j = A + sz(j) * sz(L) + sz(m_first);
    s[0] -= l * Eigen::Map<const Block>(a_j);
    if constexpr (Active > 1) s[1] -= l * Eigen::Map<const Block>(a_j + kSubstitutionBlock);
    if constexpr (Active > 2) s[2] -= l * Eigen::Map<const Block>(a_j + 2 * kSubstitutionBlock);
    if constexpr (Active > 3) s[3] -= l * Eigen::Map<const Block>(a_j + 3 * kSubstitutionBlock);
  }
}

// Count (1-4) consecutive full blocks of row i of A, the first at column m_first (< i): block b
// sums rows j = m_first + 16 b .. i - 1, ascending, as the one-block-at-a-time form does, so the
// bits are the same; the blocks' sums are independent chains, so their FMAs interleave instead of
// each waiting on its own accumulator's latency.
template <class T, int Count>
void substitute_blocks(const T* l_i, const T* A, int L, int i, int m_first, T* a_i) {
  using Block = Eigen::Matrix<T, kSubstitutionBlock, 1>;
  Block s[Count];
  for (Block& b : s) b.setZero();
  // segment g: rows from block g's first column on, where blocks 0..g take part
  const auto segment_end = [&](int g) {
    return g + 1 < Count ? std::min(i, m_first + (g + 1) * kSubstitutionBlock) : i;
  };
  substitute_rows<T, 1>(s, l_i, A, L, m_first, m_first, segment_end(0));
  if constexpr (Count > 1) substitute_rows<T, 2>(s, l_i, A, L, m_first, segment_end(0), segment_end(1));
  if constexpr (Count > 2) substitute_rows<T, 3>(s, l_i, A, L, m_first, segment_end(1), segment_end(2));
  if constexpr (Count > 3) substitute_rows<T, 4>(s, l_i, A, L, m_first, segment_end(2), segment_end(3));
  for (int b = 0; b < Count; ++b) Eigen::Map<Block>(a_i + m_first + b * kSubstitutionBlock) = s[b];
}

// Points kkt, a, u_new at `slot` and fills gamma, decay, lmat, Kb and kd of the chunk starting at
// virtual step t0; unless `cached` (the slot already holds this chunk's factors), also K K^T, A and
// Ũ = A (Vb - Kb S_in) (= U - W S_in: W itself is never needed, see chunk_backward).
template <class T>
void chunk_factors(const HeadSlice<T>& x, int t0, int L, const T* s_in, ChunkScratch<T>& c, T* slot, bool cached) {
  const int dk = c.dk, dv = c.dv;
  const T* k = x.k + sz(t0) * sz(x.ld_qk);
  const T* v = x.v + sz(t0) * sz(x.ld_v);
  const T* beta = x.beta + sz(t0) * sz(x.ld_gate);
  c.kkt = slot;
  c.a = slot + sz(L) * sz(L);
  c.u_new = slot + 2 * sz(L) * sz(L);

  T acc = 0;
  for (int i = 0; i < L; ++i) {
    acc += x.gate(t0 + i);
    c.gamma[sz(i)] = acc;
  }
  // decay row by row: the lower part, then zeros (plain loops over contiguous rows, vectorised).
  // Ungated, every decay factor is exp(0) = 1 and the kernels below skip it (multiplying by 1 is
  // exact, so both forms give the same bits); the matrix is then left unwritten.
  T* decay = c.decay.data();
  if (x.g)
    for (int i = 0; i < L; ++i) {
      T* row = decay + sz(i) * sz(L);
      const T gi = c.gamma[sz(i)];
      for (int j = 0; j <= i; ++j) row[j] = math::exp(gi - c.gamma[sz(j)]);
      for (int j = i + 1; j < L; ++j) row[j] = T(0);
    }

  // K K^T [L, L], then Lmat_ij = beta_i (k_i . k_j) decay_ij strictly below the diagonal (the only
  // part anything reads: the rest of lmat is left unwritten). Lmat feeds the forward substitution
  // and, in the backward, only the gate's gradient: a cached ungated chunk needs none of it.
  if (!cached) gemm(Trans::no, Trans::yes, L, L, dk, T(1), k, x.ld_qk, k, x.ld_qk, T(0), c.kkt, L);
  for (int i = 0; i < L && (!cached || x.g); ++i) {
    const T b = beta[sz(i) * sz(x.ld_gate)];
    const T* kkt = c.kkt + sz(i) * sz(L);
    T* l = c.lmat.data() + sz(i) * sz(L);
    if (x.g) {
      const T* d = decay + sz(i) * sz(L);
      for (int j = 0; j < i; ++j) l[j] = b * kkt[j] * d[j];
    } else {
      for (int j = 0; j < i; ++j) l[j] = b * kkt[j];
    }
  }

  const T gamma_last = c.gamma[sz(L - 1)];
  for (int i = 0; i < L; ++i) {
    const T b = beta[sz(i) * sz(x.ld_gate)], Gamma = math::exp(c.gamma[sz(i)]);
    const T* k_i = k + sz(i) * sz(x.ld_qk);
    T* kb_i = c.kb.data() + sz(i) * sz(dk);
    for (int m = 0; m < dk; ++m) kb_i[m] = b * Gamma * k_i[m];
  }
  if (x.g) {
    for (int i = 0; i < L; ++i) {
      const T end_decay = math::exp(gamma_last - c.gamma[sz(i)]);
      const T* k_i = k + sz(i) * sz(x.ld_qk);
      T* kd_i = c.kd.data() + sz(i) * sz(dk);
      for (int m = 0; m < dk; ++m) kd_i[m] = end_decay * k_i[m];
    }
    c.kd_rows = c.kd.data();
    c.ld_kd = dk;
  } else {
    c.kd_rows = k;
    c.ld_kd = x.ld_qk;
  }
  if (cached) return;

  // rhs = Vb - Kb S_in [L, dv]
  for (int i = 0; i < L; ++i) {
    const T b = beta[sz(i) * sz(x.ld_gate)];
    const T* v_i = v + sz(i) * sz(x.ld_v);
    T* rhs_i = c.rhs.data() + sz(i) * sz(dv);
    for (int m = 0; m < dv; ++m) rhs_i[m] = b * v_i[m];
  }
  gemm(Trans::no, Trans::no, L, dv, dk, T(-1), c.kb.data(), dk, s_in, dv, T(1), c.rhs.data(), dv);

  // A = (I + Lmat)^{-1} by forward substitution, row by row: A_i = e_i - sum_{j<i} Lmat_ij A_j.
  // Row j of A is zero beyond column j, so columns [m0, m0 + 16) of row i only take rows j >= m0.
  // Each such block of row i is summed in a register (a fixed-size vector; j ascending, the order
  // of the plain row-by-row form) and stored once, up to four blocks at a time
  // (substitute_blocks); the last partial block, if L is not a multiple of 16, element by element.
  T* A = c.a;
  for (int i = 0; i < L; ++i) {
    T* a_i = A + sz(i) * sz(L);
    const T* l_i = c.lmat.data() + sz(i) * sz(L);
    // full blocks starting left of the diagonal
    const int full = std::min((i + kSubstitutionBlock - 1) / kSubstitutionBlock, L / kSubstitutionBlock);
    for (int b0 = 0; b0 < full; b0 += 4) {
      const int m_first = b0 * kSubstitutionBlock;
      switch (std::min(4, full - b0)) {
        case 1:
          substitute_blocks<T, 1>(l_i, A, L, i, m_first, a_i);
          break;
        case 2:
          substitute_blocks<T, 2>(l_i, A, L, i, m_first, a_i);
          break;
        case 3:
          substitute_blocks<T, 3>(l_i, A, L, i, m_first, a_i);
          break;
        default:
          substitute_blocks<T, 4>(l_i, A, L, i, m_first, a_i);
      }
    }
    const int m0 = full * kSubstitutionBlock;
    for (int m = m0; m < i; ++m) {
      T sum = 0;
      for (int j = m; j < i; ++j) sum -= l_i[j] * A[sz(j) * sz(L) + sz(m)];
      a_i[m] = sum;
    }
    for (int m = std::max(m0, i); m < L; ++m) a_i[m] = T(0);
    a_i[i] = T(1);
  }
  // Ũ = A (Vb - Kb S_in) [L, dv]
  gemm(Trans::no, Trans::no, L, dv, L, T(1), c.a, L, c.rhs.data(), dv, T(0), c.u_new, dv);
}

// P = (Q K^T) (.) decay into c.scores [rows.count, L]: the chunk's query rows only.
template <class T>
void chunk_scores(const HeadSlice<T>& x, int t0, int L, const QueryRows& rows, ChunkScratch<T>& c) {
  if (rows.count == 0) return;
  const T* q = x.q + sz(rows.r0) * sz(x.ld_qk);
  const T* k = x.k + sz(t0) * sz(x.ld_qk);
  gemm(Trans::no, Trans::yes, rows.count, L, c.dk, T(1), q, x.ld_qk, k, x.ld_qk, T(0), c.scores.data(), L);
  for (int r = 0; r < rows.count; ++r) {
    const int i = rows.first + r * x.steps;
    T* p = c.scores.data() + sz(r) * sz(L);
    if (x.g) {
      const T* d = c.decay.data() + sz(i) * sz(L);
      for (int j = 0; j < L; ++j) p[j] *= d[j];
    } else {
      for (int j = i + 1; j < L; ++j) p[j] = T(0);  // the causal mask; decay 1 on and below the diagonal
    }
  }
}

// S <- Gamma_{L-1} S + Kd^T Ũ (in place; the factors of the chunk must be current).
template <class T>
void chunk_advance_state(int L, ChunkScratch<T>& c, T* state) {
  if (c.gamma[sz(L - 1)] != T(0)) Eigen::Map<Mat<T>>(state, c.dk, c.dv) *= math::exp(c.gamma[sz(L - 1)]);
  gemm(Trans::yes, Trans::no, c.dk, c.dv, L, T(1), c.kd_rows, c.ld_kd, c.u_new, c.dv, T(1), state, c.dv);
}

// n = virtual steps of the head (tokens * steps); out has the per-token rows.
template <class T>
void chunked_forward_head(const HeadSlice<T>& x, int n, int dk, int dv, T scale, int chunk, T* out, int ld_out,
                          T* state, ChunkScratch<T>& c) {
  Eigen::Map<Mat<T>> S(state, dk, dv);
  if (x.initial_state)
    S = Eigen::Map<const Mat<T>>(x.initial_state, dk, dv);
  else
    S.setZero();
  for (int t0 = 0; t0 < n; t0 += chunk) {
    const int L = std::min(chunk, n - t0);
    const QueryRows rows = query_rows(t0, L, x.steps);
    if (t0 + L < n) prefetch_chunk_inputs(x, t0 + L, std::min(chunk, n - t0 - L), dk, dv);
    chunk_factors(x, t0, L, state, c, c.slot.data(), false);
    chunk_scores(x, t0, L, rows, c);
    if (rows.count > 0) {
      // O = s diag(Gamma) Q S_in + s P Ũ on the query rows
      T* o = out + sz(rows.r0) * sz(ld_out);
      gemm(Trans::no, Trans::no, rows.count, dv, dk, scale, x.q + sz(rows.r0) * sz(x.ld_qk), x.ld_qk, state, dv, T(0),
           o, ld_out);
      if (x.g)
        for (int r = 0; r < rows.count; ++r)
          Eigen::Map<Vec<T>>(o + sz(r) * sz(ld_out), dv) *= math::exp(c.gamma[sz(rows.first + r * x.steps)]);
      gemm(Trans::no, Trans::no, rows.count, dv, L, scale, c.scores.data(), L, c.u_new, dv, T(1), o, ld_out);
    }
    chunk_advance_state(L, c, state);
  }
}

// Backward of one chunk given dO (the per-token rows of dout, stride ld_out) and dH = dL/dS_out
// [dk, dv]; overwrites dH with dL/dS_in and writes the chunk's rows of dk, dv, dbeta and its
// tokens' rows of dq, dg. With Ũ, A, P, Kb from chunk_factors / chunk_scores (all products below
// are (B1)-(B7) of docs/derivations/delta_rule.md; Q, P, dO, dP have the query rows only):
//   dŨ    = s P^T dO + Kd dH                                                     (B1)
//   Y     = A^T dŨ                   (= dVb, since U = A Vb and dU = dŨ)          (B2)
//   X     = A^T dW = -Y S_in^T       (= dKb; dW = -dŨ S_in^T from Ũ = U - W S_in, W = A Kb)
//   dS_in = Gamma_{L-1} dH + s Q^T diag(Gamma) dO - W^T dŨ,  W^T dŨ = Kb^T Y      (B3)
//   dP    = s dO Ũ^T (causal part);  dQ = (dP (.) decay) K + s diag(Gamma) dO S_in^T;  dK = (dP (.) decay)^T Q  (B4)
//   dKd   = Ũ dH^T;                  dK += diag(exp(gamma_{L-1} - gamma)) dKd
//   dK += diag(beta Gamma) X;  dV = diag(beta) Y;  dbeta_i = Gamma_i k_i . x_i + v_i . y_i   (B5)
//   dLmat = -tril(A^T dA A^T, -1) with dA = dW Kb^T + dU Vb^T, which is -tril(Y Ũ^T, -1)   (B6):
//     A^T dA A^T = X W^T + Y U^T = Y (U - W S_in)^T.  (Only the strict lower part of dA matters, A
//     staying unit lower; its upper part with the diagonal, times the upper triangular A^T on both
//     sides, stays upper, so the full dA gives the same strict lower part.)
//   With Lmat_ij = beta_i (k_i . k_j) decay_ij:
//     dbeta_i += sum_j dLmat_ij (k_i . k_j) decay_ij;  E = dLmat (.) diag(beta) decay;  dK += (E + E^T) K
// Gate, through gamma (dL/dgamma accumulated as dgam; (B7)):
//   every factor decay_ij = exp(gamma_i - gamma_j) on a term X_ij adds X_ij dX_ij to dgam_i and
//   subtracts it from dgam_j (for P and Lmat); every row scaling Gamma_i adds (scaled row . its
//   gradient) to dgam_i (Q S_in rows, Kb rows); the chunk-end factors add sum(Gamma_{L-1} S_in (.) dH)
//   + sum_i kd_i . dkd_i to dgam_{L-1} and subtract kd_i . dkd_i from dgam_i.
//   Finally dg_m = sum_{i >= m} dgam_i, since gamma_i = g_0 + ... + g_i.
template <class T>
void chunk_backward(const HeadSlice<T>& x, int t0, int L, T scale, const T* s_in, const T* dout, int ld_out, T* dh,
                    T* dq_out, T* dk_out, T* dv_out, T* dbeta, T* dg, ChunkScratch<T>& c, T* slot, bool cached) {
  const int dk = c.dk, dv = c.dv;
  const QueryRows rows = query_rows(t0, L, x.steps);
  const int nq = rows.count;
  const T* q = x.q + sz(rows.r0) * sz(x.ld_qk);
  const T* k = x.k + sz(t0) * sz(x.ld_qk);
  const T* v = x.v + sz(t0) * sz(x.ld_v);
  const T* beta = x.beta + sz(t0) * sz(x.ld_gate);
  const T* d_o = dout + sz(rows.r0) * sz(ld_out);
  T* dq = dq_out + sz(rows.r0) * sz(x.ld_qk);
  T* dkk = dk_out + sz(t0) * sz(x.ld_qk);
  T* dvv = dv_out + sz(t0) * sz(x.ld_v);
  const int ldg = x.ld_gate;
  // chunk row of query row r
  const auto qrow = [&](int r) { return rows.first + r * x.steps; };

  chunk_factors(x, t0, L, s_in, c, slot, cached);
  chunk_scores(x, t0, L, rows, c);
  const T* decay = c.decay.data();
  const T* scores = c.scores.data();
  const T* u_new = c.u_new;
  const T gamma_last = c.gamma[sz(L - 1)];
  // dgam = dL/dgamma only feeds dg: without a gate gradient every gate term below is skipped (and
  // an ungated chunk has no decay matrix for them to read).
  T* dgam = dg && x.g ? c.d_gamma.data() : nullptr;
  if (dgam) std::fill_n(dgam, L, T(0));
  T* du = c.du.data();

  // diag(Gamma) dO [nq, dv]; without a gate Gamma = 1 and it is dO itself.
  const T* do_gated = d_o;
  int ld_do_gated = ld_out;
  if (x.g) {
    for (int r = 0; r < nq; ++r) {
      const T Gamma = math::exp(c.gamma[sz(qrow(r))]);
      for (int m = 0; m < dv; ++m) c.do_gated[sz(r) * sz(dv) + sz(m)] = Gamma * d_o[sz(r) * sz(ld_out) + sz(m)];
    }
    do_gated = c.do_gated.data();
    ld_do_gated = dv;
  }

  // dŨ = s P^T dO + Kd dH
  product(Trans::yes, Trans::no, L, dv, nq, scale, scores, L, d_o, ld_out, T(0), du, dv);
  gemm(Trans::no, Trans::no, L, dv, dk, T(1), c.kd_rows, c.ld_kd, dh, dv, T(1), du, dv);

  // Chunk-end gate terms need dH before it is replaced by dS_in: dKd = Ũ dH^T, sum(S_in (.) dH).
  gemm(Trans::no, Trans::yes, L, dk, dv, T(1), u_new, dv, dh, dv, T(0), c.dkd.data(), dk);
  Eigen::Map<Mat<T>> dH(dh, dk, dv);
  if (dgam) dgam[sz(L - 1)] += math::exp(gamma_last) * dot(s_in, dh, dk * dv);

  // Y = A^T dŨ; dS_in = Gamma_{L-1} dH + s Q^T diag(Gamma) dO - Kb^T Y   (in place in dh)
  T* y = c.y.data();
  gemm(Trans::yes, Trans::no, L, dv, L, T(1), c.a, L, du, dv, T(0), y, dv);
  if (gamma_last != T(0)) dH *= math::exp(gamma_last);
  product(Trans::yes, Trans::no, dk, dv, nq, scale, q, x.ld_qk, do_gated, ld_do_gated, T(1), dh, dv);
  gemm(Trans::yes, Trans::no, dk, dv, L, T(-1), c.kb.data(), dk, y, dv, T(1), dh, dv);

  // dP = s dO Ũ^T on the causal part; its gate terms; then dP (.) decay in place.
  T* dP = c.d_scores.data();
  if (nq > 0) {
    gemm(Trans::no, Trans::yes, nq, L, dv, scale, d_o, ld_out, u_new, dv, T(0), dP, L);
    for (int r = 0; r < nq; ++r) {
      const int i = qrow(r);
      const T* p = scores + sz(r) * sz(L);
      const T* d = decay + sz(i) * sz(L);
      T* dp = dP + sz(r) * sz(L);
      if (dgam)
        dgam[sz(i)] += score_gate_terms(p, dp, d, dgam, i + 1);
      else if (x.g)
        for (int j = 0; j <= i; ++j) dp[j] *= d[j];
      for (int j = i + 1; j < L; ++j) dp[j] = T(0);
    }
    // dQ = (dP (.) decay) K + s diag(Gamma) dO S_in^T, the second term also feeding dgam_i.
    gemm(Trans::no, Trans::no, nq, dk, L, T(1), dP, L, k, x.ld_qk, T(0), dq, x.ld_qk);
    gemm(Trans::no, Trans::yes, nq, dk, dv, scale, do_gated, ld_do_gated, s_in, dv, T(0), c.dq_state.data(), dk);
    for (int r = 0; r < nq; ++r) {
      Eigen::Map<Vec<T>> dq_r(dq + sz(r) * sz(x.ld_qk), dk);
      const Eigen::Map<const Vec<T>> dq_state_r(c.dq_state.data() + sz(r) * sz(dk), dk);
      if (dgam) dgam[sz(qrow(r))] += dot(c.dq_state.data() + sz(r) * sz(dk), q + sz(r) * sz(x.ld_qk), dk);
      dq_r += dq_state_r;
    }
  }
  // dK = (dP (.) decay)^T Q + diag(exp(gamma_{L-1} - gamma)) dKd
  product(Trans::yes, Trans::no, L, dk, nq, T(1), dP, L, q, x.ld_qk, T(0), dkk, x.ld_qk);
  for (int i = 0; i < L; ++i) {
    const Eigen::Map<const Vec<T>> dkd_i(c.dkd.data() + sz(i) * sz(dk), dk);
    if (dgam) {
      const T through_key = dot(c.dkd.data() + sz(i) * sz(dk), c.kd_rows + sz(i) * sz(c.ld_kd), dk);
      dgam[sz(L - 1)] += through_key;
      dgam[sz(i)] -= through_key;
    }
    Eigen::Map<Vec<T>>(dkk + sz(i) * sz(x.ld_qk), dk) += math::exp(gamma_last - c.gamma[sz(i)]) * dkd_i;
  }

  // WY part. X = -Y S_in^T, then the rows of dK, dV, dbeta and dgam through Kb = diag(beta Gamma) K
  // and Vb = diag(beta) V.
  gemm(Trans::no, Trans::yes, L, dk, dv, T(-1), y, dv, s_in, dv, T(0), c.x.data(), dk);
  for (int i = 0; i < L; ++i) {
    const T b = beta[sz(i) * sz(ldg)], Gamma = math::exp(c.gamma[sz(i)]);
    const Eigen::Map<const Vec<T>> x_i(c.x.data() + sz(i) * sz(dk), dk);
    const Eigen::Map<const Vec<T>> y_i(y + sz(i) * sz(dv), dv);
    const T kx = dot(k + sz(i) * sz(x.ld_qk), c.x.data() + sz(i) * sz(dk), dk);
    Eigen::Map<Vec<T>>(dkk + sz(i) * sz(x.ld_qk), dk) += (b * Gamma) * x_i;
    Eigen::Map<Vec<T>>(dvv + sz(i) * sz(x.ld_v), dv) = b * y_i;
    dbeta[sz(t0 + i) * sz(ldg)] = Gamma * kx + dot(v + sz(i) * sz(x.ld_v), y + sz(i) * sz(dv), dv);
    if (dgam) dgam[sz(i)] += b * Gamma * kx;
  }
  // dLmat = -tril(Y Ũ^T, -1), then through Lmat_ij = beta_i (k_i . k_j) decay_ij into beta, the
  // gate and E = dLmat (.) diag(beta) decay; F = E + E^T (stored in dl) for the keys.
  gemm(Trans::no, Trans::yes, L, L, dv, T(-1), y, dv, u_new, dv, T(0), c.dl.data(), L);
  T* F = c.dl.data();
  for (int i = 0; i < L; ++i) {
    const T b = beta[sz(i) * sz(ldg)];
    const T* kkt = c.kkt + sz(i) * sz(L);
    const T* lmat = c.lmat.data() + sz(i) * sz(L);
    const T* d = decay + sz(i) * sz(L);
    T* e = F + sz(i) * sz(L);
    T dbeta_i;
    if (dgam) {
      T gate_row = 0;
      dbeta_i = lmat_terms(e, kkt, lmat, d, b, dgam, i, &gate_row);
      dgam[sz(i)] += gate_row;
    } else {
      // Ungated, a row of ones stands for the decay: the same expression, so the same bits (GCC
      // contracts e kkt d + sum into one fma; e kkt + sum would round differently).
      dbeta_i = lmat_beta_terms(e, kkt, x.g ? d : c.ones.data(), b, i);
    }
    e[i] = T(0);
    dbeta[sz(t0 + i) * sz(ldg)] += dbeta_i;
  }
  // Upper triangle of F from E^T: one transpose, then contiguous row copies (the strided mirror
  // loop it replaces ran element by element).
  T* Ft = c.dl_transposed.data();
  transpose(L, L, F, L, Ft, L);
  for (int i = 0; i + 1 < L; ++i)
    std::copy(Ft + sz(i) * sz(L) + sz(i + 1), Ft + sz(i + 1) * sz(L), F + sz(i) * sz(L) + sz(i + 1));
  gemm(Trans::no, Trans::no, L, dk, L, T(1), F, L, k, x.ld_qk, T(1), dkk, x.ld_qk);

  if (dgam) {
    // dg of token r: at its first virtual step r * steps, if that lies in this chunk.
    T acc = 0;
    for (int i = L - 1; i >= 0; --i) {
      acc += dgam[sz(i)];
      if ((t0 + i) % x.steps == 0) dg[sz((t0 + i) / x.steps) * sz(ldg)] = acc;
    }
  }
}

template <class T>
void chunked_backward_head(const HeadSlice<T>& x, int n, int dk, int dv, T scale, int chunk, const T* dout, int ld_out,
                           const T* dfinal_state, T* dq, T* dk_out, T* dv_out, T* dbeta, T* dg, T* dinitial_state,
                           ChunkedWorkspace<T>& ws) {
  ChunkScratch<T>& c = ws.chunk;
  const int chunks = (n + chunk - 1) / chunk;
  const std::size_t state_size = sz(dk) * sz(dv), slot_size = ChunkScratch<T>::slot_size(chunk, dv);
  // entering[c] = S_in of chunk c, from one forward sweep over the states only; the sweep's factors
  // stay in the per-chunk slots for the reverse sweep (all but the last chunk's).
  ChunkScratch<T>::grow(ws.entering, sz(chunks + 1) * state_size);
  ChunkScratch<T>::grow(ws.factors, sz(chunks) * slot_size);
  std::vector<T>& entering = ws.entering;
  Eigen::Map<Mat<T>> S0(entering.data(), dk, dv);
  if (x.initial_state)
    S0 = Eigen::Map<const Mat<T>>(x.initial_state, dk, dv);
  else
    S0.setZero();
  for (int ci = 0; ci + 1 < chunks; ++ci) {
    const int t0 = ci * chunk, L = std::min(chunk, n - t0);
    T* s_in = entering.data() + sz(ci) * state_size;
    prefetch_chunk_inputs(x, t0 + L, std::min(chunk, n - t0 - L), dk, dv);
    chunk_factors(x, t0, L, s_in, c, ws.factors.data() + sz(ci) * slot_size, false);
    std::copy_n(s_in, state_size, s_in + state_size);
    chunk_advance_state(L, c, s_in + state_size);
  }
  // dH = dL/dS_out of the current chunk, walking chunks in reverse.
  ChunkScratch<T>::grow(ws.dh, state_size);
  std::vector<T>& dh = ws.dh;
  if (dfinal_state)
    std::copy_n(dfinal_state, state_size, dh.begin());
  else
    std::fill_n(dh.begin(), state_size, T(0));
  for (int ci = chunks - 1; ci >= 0; --ci) {
    const int t0 = ci * chunk, L = std::min(chunk, n - t0);
    if (ci > 0) prefetch_chunk_backward(x, t0 - chunk, chunk, dk, dv, dout, ld_out, dq, dk_out, dv_out);
    chunk_backward(x, t0, L, scale, entering.data() + sz(ci) * state_size, dout, ld_out, dh.data(), dq, dk_out, dv_out,
                   dbeta, dg, c, ws.factors.data() + sz(ci) * slot_size, ci + 1 < chunks);
  }
  if (dinitial_state) std::copy_n(dh.begin(), state_size, dinitial_state);
}

}  // namespace

template <class T>
void delta_rule_recurrent_forward(const DeltaRuleShape& s, T scale, const DeltaRuleInputs<T>& in, T* out,
                                  std::type_identity_t<T>* final_state) {
  std::vector<T> state(sz(s.key_dim) * sz(s.value_dim));
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      recurrent_forward_head(head_slice(s, in, b, h), s.seq_len, s.key_dim, s.value_dim, scale,
                             out + token_offset(s, b, h, s.value_dim), s.heads * s.value_dim, state.data());
      if (final_state) std::copy(state.begin(), state.end(), final_state + state_offset(s, b, h));
    }
}

template <class T>
void delta_rule_recurrent_backward(const DeltaRuleShape& s, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                                   const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads) {
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const std::size_t qk = token_offset(s, b, h, s.key_dim), v = token_offset(s, b, h, s.value_dim);
      const std::size_t gate = token_offset(s, b, h, 1), state = state_offset(s, b, h);
      recurrent_backward_head(
          head_slice(s, in, b, h), s.seq_len, s.key_dim, s.value_dim, scale, dout + v, s.heads * s.value_dim,
          dfinal_state ? dfinal_state + state : nullptr, grads.dq + qk, grads.dk + qk, grads.dv + v, grads.dbeta + gate,
          in.g && grads.dg ? grads.dg + gate : nullptr, grads.dinitial_state ? grads.dinitial_state + state : nullptr);
    }
}

template <class T>
void delta_rule_interleaved_forward(const DeltaRuleShape& s, int steps, T scale, const DeltaRuleInputs<T>& in, T* out,
                                    std::type_identity_t<T>* final_state, int chunk_size) {
  const int n = s.seq_len * steps;
  const int chunk = std::max(1, std::min(chunk_size, n));
  ChunkedWorkspace<T>& ws = chunked_workspace<T>();
  ws.chunk.fit(chunk, s.key_dim, s.value_dim, false);
  const std::size_t state_size = sz(s.key_dim) * sz(s.value_dim);
  ChunkScratch<T>::grow(ws.state, state_size);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      chunked_forward_head(head_slice(s, in, b, h, steps), n, s.key_dim, s.value_dim, scale, chunk,
                           out + token_offset(s, b, h, s.value_dim), s.heads * s.value_dim, ws.state.data(), ws.chunk);
      if (final_state) std::copy_n(ws.state.begin(), state_size, final_state + state_offset(s, b, h));
    }
}

template <class T>
void delta_rule_interleaved_backward(const DeltaRuleShape& s, int steps, T scale, const DeltaRuleInputs<T>& in,
                                     const T* dout, const std::type_identity_t<T>* dfinal_state,
                                     const DeltaRuleGradients<T>& grads, int chunk_size) {
  const int n = s.seq_len * steps;
  const int chunk = std::max(1, std::min(chunk_size, n));
  ChunkedWorkspace<T>& ws = chunked_workspace<T>();
  ws.chunk.fit(chunk, s.key_dim, s.value_dim, true);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      // per token: q, out, g; per virtual step: k, v, beta
      const std::size_t q = token_offset(s, b, h, s.key_dim), o = token_offset(s, b, h, s.value_dim);
      const std::size_t gate = token_offset(s, b, h, 1), state = state_offset(s, b, h);
      const std::size_t step0 = sz(b) * sz(n) * sz(s.heads) + sz(h);
      chunked_backward_head(head_slice(s, in, b, h, steps), n, s.key_dim, s.value_dim, scale, chunk, dout + o,
                            s.heads * s.value_dim, dfinal_state ? dfinal_state + state : nullptr, grads.dq + q,
                            grads.dk + step0 * sz(s.key_dim), grads.dv + step0 * sz(s.value_dim), grads.dbeta + step0,
                            in.g && grads.dg ? grads.dg + gate : nullptr,
                            grads.dinitial_state ? grads.dinitial_state + state : nullptr, ws);
    }
}

template <class T>
void delta_rule_chunked_forward(const DeltaRuleShape& s, T scale, const DeltaRuleInputs<T>& in, T* out,
                                std::type_identity_t<T>* final_state, int chunk_size) {
  delta_rule_interleaved_forward(s, 1, scale, in, out, final_state, chunk_size);
}

template <class T>
void delta_rule_chunked_backward(const DeltaRuleShape& s, T scale, const DeltaRuleInputs<T>& in, const T* dout,
                                 const std::type_identity_t<T>* dfinal_state, const DeltaRuleGradients<T>& grads,
                                 int chunk_size) {
  delta_rule_interleaved_backward(s, 1, scale, in, dout, dfinal_state, grads, chunk_size);
}

#define EXPT_INSTANTIATE_DELTA_RULE(T)                                                                                 \
  template void delta_rule_recurrent_forward<T>(const DeltaRuleShape&, T, const DeltaRuleInputs<T>&, T*, T*);          \
  template void delta_rule_recurrent_backward<T>(const DeltaRuleShape&, T, const DeltaRuleInputs<T>&, const T*,        \
                                                 const T*, const DeltaRuleGradients<T>&);                              \
  template void delta_rule_chunked_forward<T>(const DeltaRuleShape&, T, const DeltaRuleInputs<T>&, T*, T*, int);       \
  template void delta_rule_chunked_backward<T>(const DeltaRuleShape&, T, const DeltaRuleInputs<T>&, const T*,          \
                                               const T*, const DeltaRuleGradients<T>&, int);                           \
  template void delta_rule_interleaved_forward<T>(const DeltaRuleShape&, int, T, const DeltaRuleInputs<T>&, T*, T*,    \
                                                  int);                                                                \
  template void delta_rule_interleaved_backward<T>(const DeltaRuleShape&, int, T, const DeltaRuleInputs<T>&, const T*, \
                                                   const T*, const DeltaRuleGradients<T>&, int);

EXPT_INSTANTIATE_DELTA_RULE(float)
EXPT_INSTANTIATE_DELTA_RULE(double)

#undef EXPT_INSTANTIATE_DELTA_RULE

}  // namespace expt::kernels
