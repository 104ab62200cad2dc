#include "kernels/gla.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "kernels/elementwise_math.hpp"
#include "kernels/gemm.hpp"

namespace expt::kernels {

namespace {

std::size_t zu(int x) { return static_cast<std::size_t>(x); }

// A row of d elements viewed as an Eigen array, so elementwise products vectorise.
template <class T>
using Row = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstRow = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// Offsets of head h of sequence b: rows of q/k/g (stride heads*key_dim), rows of v/out (stride
// heads*value_dim), and the d_k x d_v state.
struct HeadOffsets {
  std::size_t key = 0;
  std::size_t value = 0;
  std::size_t state = 0;
};

HeadOffsets head_offsets(const GlaShape& s, int b, int h) {
  HeadOffsets off;
  off.key = (zu(b) * zu(s.seq_len) * zu(s.heads) + zu(h)) * zu(s.key_dim);
  off.value = (zu(b) * zu(s.seq_len) * zu(s.heads) + zu(h)) * zu(s.value_dim);
  off.state = (zu(b) * zu(s.heads) + zu(h)) * zu(s.key_dim) * zu(s.value_dim);
  return off;
}

void check_shape(const GlaShape& s) {
  if (s.batch < 0 || s.seq_len < 0 || s.heads < 0 || s.key_dim < 0 || s.value_dim < 0)
    throw std::invalid_argument("gla: negative dimension");
}

void check_chunking(const GlaChunking& c) {
  if (c.chunk_size < 1 || c.sub_chunk_size < 1)
    throw std::invalid_argument("gla: chunk_size and sub_chunk_size must be >= 1");
}

// Per-chunk scratch of one head. A chunk has L <= C rows t = 0..L-1 (local indices); b_t is the
// local inclusive cumulative log-gate, b_* = b_{L-1}. Every factor below is a product of gates
// a = exp(g) <= 1, i.e. exp of a non-positive exponent. All [C, d_k] arrays are row-major, ld d_k.
template <class T>
struct ChunkScratch {
  // Grows every buffer to fit chunks of `chunk` rows (never shrinks them).
  void fit(int chunk, int key_dim) {
    const std::size_t ck = zu(chunk) * zu(key_dim);
    for (std::vector<T>* buf :
         {&gate, &decay_in, &decay_out, &decay_sub, &q_rel, &q_bar, &k_bar, &key_decay, &k_rel, &block_q, &block_k})
      grow(*buf, ck);
    grow(diag_decay, zu(key_dim));
    grow(scores, zu(chunk) * zu(chunk));
    grow(dscores, zu(chunk) * zu(chunk));
    grow(rho, zu(key_dim));
  }
  static void grow(std::vector<T>& buf, std::size_t n) {
    if (buf.size() < n) buf.resize(n);
  }
  std::vector<T> gate;        // a_t = exp(g_t)
  std::vector<T> decay_in;    // exp(b_t)        = prod_{j <= t} a_j
  std::vector<T> decay_out;   // exp(b_* - b_t)  = prod_{t < j < L} a_j
  std::vector<T> decay_sub;   // exp(b_t - b_i0) = prod_{i0 < j <= t} a_j, i0 = first row of t's sub-chunk
  std::vector<T> q_rel;       // q_t (.) decay_sub_t
  std::vector<T> q_bar;       // scale q_t (.) decay_in_t                      (F1)
  std::vector<T> k_bar;       // k_t (.) decay_out_t                          (F5)
  std::vector<T> key_decay;   // per sub-chunk I: exp(b_i0 - b_s) = prod_{s < j <= i0} a_j for s < i0
  std::vector<T> k_rel;       // per sub-chunk I: k_s (.) key_decay_s for s < i0
  std::vector<T> block_q;     // [C, d_k] product scratch (query side)
  std::vector<T> block_k;     // [C, d_k] product scratch (key side)
  std::vector<T> diag_decay;  // [d_k] running exp(b_t - b_s) in a diagonal block (times k_s in the forward)
  std::vector<T> scores;      // [L, L] A (F3), ld L
  std::vector<T> dscores;     // [L, L] dA = scale dO V^T, masked, ld L
  std::vector<T> rho;         // [d_k] rowsum(S_out (.) dH)
};

// Per-thread scratch of the chunked kernels, kept from call to call so that a call neither
// allocates nor touches fresh pages (the per-call vectors cost about 9 % of the kernel in page
// faults and zeroing at T = 1024). Every element is written before it is read within a call, so
// neither the old contents nor the buffers' addresses can reach a result.
template <class T>
struct ChunkedWorkspace {
  ChunkScratch<T> chunk;
  std::vector<T> S, dH;       // [d_k, d_v] running state and its gradient
  std::vector<T> entering;    // [chunks, d_k, d_v] S_in of every chunk of one head (backward)
  std::vector<T> head_gates;  // [seq_len, d_k] exp(g) of one head (backward)
};

template <class T>
ChunkedWorkspace<T>& chunked_workspace(int chunk, int seq_len, int key_dim, int value_dim) {
  thread_local ChunkedWorkspace<T> ws;
  ws.chunk.fit(chunk, key_dim);
  const std::size_t state_size = zu(key_dim) * zu(value_dim);
  ChunkScratch<T>::grow(ws.S, state_size);
  ChunkScratch<T>::grow(ws.dH, state_size);
  ChunkScratch<T>::grow(ws.entering, zu((seq_len + chunk - 1) / chunk) * state_size);
  ChunkScratch<T>::grow(ws.head_gates, zu(seq_len) * zu(key_dim));
  return ws;
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

// Decay factors and the decayed queries/keys of one chunk (rows t0..t0+L-1 of one head), from the
// gates already in cs.gate. Rows are handled as Eigen arrays so the elementwise products vectorise.
template <class T>
void chunk_factors(int L, int dk, int sub, T scale, const T* q, const T* k, int ld_key, ChunkScratch<T>& cs) {
  auto row = [dk](std::vector<T>& buf, int t) { return Row<T>(buf.data() + zu(t) * zu(dk), dk); };
  auto gate = [&](int t) { return ConstRow<T>(cs.gate.data() + zu(t) * zu(dk), dk); };
  // decay_in: prefix products; decay_sub: prefix products restarted at each sub-chunk's first row.
  row(cs.decay_in, 0) = gate(0);
  for (int t = 1; t < L; ++t) row(cs.decay_in, t) = row(cs.decay_in, t - 1) * gate(t);
  for (int t = 0; t < L; ++t) {
    if (t % sub == 0)
      row(cs.decay_sub, t).setOnes();
    else
      row(cs.decay_sub, t) = row(cs.decay_sub, t - 1) * gate(t);
  }
  // decay_out: suffix products excluding the row itself.
  row(cs.decay_out, L - 1).setOnes();
  for (int t = L - 2; t >= 0; --t) row(cs.decay_out, t) = row(cs.decay_out, t + 1) * gate(t + 1);
  for (int t = 0; t < L; ++t) {
    const ConstRow<T> q_t(q + zu(t) * zu(ld_key), dk), k_t(k + zu(t) * zu(ld_key), dk);
    row(cs.q_rel, t) = q_t * row(cs.decay_sub, t);
    row(cs.q_bar, t) = scale * q_t * row(cs.decay_in, t);
    row(cs.k_bar, t) = k_t * row(cs.decay_out, t);
  }
}

// For the sub-chunk starting at row i0 > 0: key_decay_s = exp(b_i0 - b_s) and k_rel_s = k_s (.)
// key_decay_s for every earlier row s < i0 of the chunk (suffix products of the gates up to i0).
template <class T>
void sub_chunk_keys(int i0, int dk, const T* k, int ld_key, ChunkScratch<T>& cs) {
  for (int s = i0 - 1; s >= 0; --s) {
    Row<T> p_s(cs.key_decay.data() + zu(s) * zu(dk), dk);
    const ConstRow<T> a_next(cs.gate.data() + zu(s + 1) * zu(dk), dk);
    if (s == i0 - 1)
      p_s = a_next;
    else
      p_s = Row<T>(cs.key_decay.data() + zu(s + 1) * zu(dk), dk) * a_next;
    Row<T>(cs.k_rel.data() + zu(s) * zu(dk), dk) = ConstRow<T>(k + zu(s) * zu(ld_key), dk) * p_s;
  }
}

// (F3) with secondary chunking: A_ts = scale sum_m q_tm k_sm exp(b_tm - b_sm) for s <= t, else 0.
//   Off-diagonal blocks (query sub-chunk I from row i0, keys s < i0):
//     A[I, 0:i0] = scale (q_I (.) exp(b_I - b_i0)) (k_s (.) exp(b_i0 - b_s))^T      one GEMM
//   Diagonal blocks (s <= t in the same sub-chunk): elementwise, exp(b_t - b_s) as a running product.
template <class T>
void chunk_scores(int L, int dk, int sub, T scale, const T* q, const T* k, int ld_key, ChunkScratch<T>& cs) {
  T* A = cs.scores.data();
  std::fill(A, A + zu(L) * zu(L), T(0));
  for (int i0 = 0; i0 < L; i0 += sub) {
    const int i1 = std::min(L, i0 + sub), rows = i1 - i0;
    if (i0 > 0) {
      sub_chunk_keys(i0, dk, k, ld_key, cs);
      gemm(Trans::no, Trans::yes, rows, i0, dk, scale, cs.q_rel.data() + zu(i0) * zu(dk), dk, cs.k_rel.data(), dk, T(0),
           A + zu(i0) * zu(L), L);
    }
    // Diagonal block: e = k_s (.) exp(b_t - b_s), advanced one gate per row t.
    Row<T> e(cs.diag_decay.data(), dk);
    for (int s = i0; s < i1; ++s) {
      e = ConstRow<T>(k + zu(s) * zu(ld_key), dk);
      for (int t = s; t < i1; ++t) {
        if (t > s) e *= ConstRow<T>(cs.gate.data() + zu(t) * zu(dk), dk);
        A[zu(t) * zu(L) + zu(s)] = scale * (ConstRow<T>(q + zu(t) * zu(ld_key), dk) * e).sum();
      }
    }
  }
}

// S <- Diag(exp(b_*)) S + K_bar^T V  (F5): the state leaving the chunk. v has row stride ld_value.
template <class T>
void chunk_state_update(int L, int dk, int dv, const T* v, int ld_value, const ChunkScratch<T>& cs, T* S) {
  const T* last = cs.decay_in.data() + zu(L - 1) * zu(dk);
  for (int i = 0; i < dk; ++i) Row<T>(S + zu(i) * zu(dv), dv) *= last[i];
  gemm(Trans::yes, Trans::no, dk, dv, L, T(1), cs.k_bar.data(), dk, v, ld_value, T(1), S, dv);
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
  const int ld_key = shape.heads * dk, ld_value = shape.heads * dv;
  ChunkedWorkspace<T>& ws = chunked_workspace<T>(C, 0, dk, dv);
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
        chunk_factors(L, dk, sub, scale, q, k, ld_key, cs);
        chunk_scores(L, dk, sub, scale, q, k, ld_key, cs);
        // (F2) O = Q_bar S_in: [L, d_k] x [d_k, d_v];  (F4) O += A V: [L, L] x [L, d_v].
        gemm(Trans::no, Trans::no, L, dv, dk, T(1), cs.q_bar.data(), dk, S, dv, T(0), o, ld_value);
        gemm(Trans::no, Trans::no, L, dv, L, T(1), cs.scores.data(), L, v, ld_value, T(1), o, ld_value);
        chunk_state_update(L, dk, dv, v, ld_value, cs, S);
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
  const int ld_key = shape.heads * dk, ld_value = shape.heads * dv;
  const int num_chunks = (n + C - 1) / C;
  const std::size_t state_size = zu(dk) * zu(dv);
  ChunkedWorkspace<T>& ws = chunked_workspace<T>(C, n, dk, dv);
  ChunkScratch<T>& cs = ws.chunk;
  std::vector<T>& entering = ws.entering;      // S_in of every chunk of one head
  std::vector<T>& head_gates = ws.head_gates;  // exp(g) of one head, [seq_len, d_k]
  auto row = [dk](std::vector<T>& buf, int t) { return Row<T>(buf.data() + zu(t) * zu(dk), dk); };
  T* S = ws.S.data();
  T* dH = ws.dH.data();
  for (int b = 0; b < shape.batch; ++b)
    for (int h = 0; h < shape.heads; ++h) {
      const HeadOffsets off = head_offsets(shape, b, h);
      // Forward sweep: store S_in(c) for every chunk.
      load_state(in.initial_state, off.state, state_size, S);
      for (int c = 0; c < num_chunks; ++c) {
        const int t0 = c * C, L = std::min(C, n - t0);
        std::copy_n(S, state_size, entering.begin() + static_cast<std::ptrdiff_t>(zu(c) * state_size));
        const T* q = in.q + off.key + zu(t0) * zu(ld_key);
        const T* k = in.k + off.key + zu(t0) * zu(ld_key);
        const T* g = in.g + off.key + zu(t0) * zu(ld_key);
        const T* v = in.v + off.value + zu(t0) * zu(ld_value);
        T* gate = head_gates.data() + zu(t0) * zu(dk);
        chunk_gates(L, dk, g, ld_key, gate);
        std::copy(gate, gate + zu(L) * zu(dk), cs.gate.begin());
        chunk_factors(L, dk, sub, scale, q, k, ld_key, cs);
        chunk_state_update(L, dk, dv, v, ld_value, cs, S);
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
        const T* S_in = entering.data() + zu(c) * state_size;
        const T* gate = head_gates.data() + zu(t0) * zu(dk);
        std::copy(gate, gate + zu(L) * zu(dk), cs.gate.begin());
        chunk_factors(L, dk, sub, scale, q, k, ld_key, cs);
        chunk_scores(L, dk, sub, scale, q, k, ld_key, cs);

        // (D1) dV = A^T dO + K_bar dH: [L, L]^T x [L, d_v] + [L, d_k] x [d_k, d_v].
        gemm(Trans::yes, Trans::no, L, dv, L, T(1), cs.scores.data(), L, dO, ld_value, T(0), dV, ld_value);
        gemm(Trans::no, Trans::no, L, dv, dk, T(1), cs.k_bar.data(), dk, dH, dv, T(1), dV, ld_value);

        // (D2) dA_ts = scale (do_t . v_s) for s <= t, else 0: [L, d_v] x [d_v, L].
        T* dA = cs.dscores.data();
        gemm(Trans::no, Trans::yes, L, L, dv, scale, dO, ld_value, v, ld_value, T(0), dA, L);
        for (int t = 0; t < L; ++t) std::fill(dA + zu(t) * zu(L) + zu(t) + 1, dA + zu(t + 1) * zu(L), T(0));

        // (D4) inter-chunk parts: dq_t = scale exp(b_t) (.) (S_in do_t), dk_t = exp(b_* - b_t) (.) (dH v_t).
        gemm(Trans::no, Trans::yes, L, dk, dv, scale, dO, ld_value, S_in, dv, T(0), dq, ld_key);
        gemm(Trans::no, Trans::yes, L, dk, dv, T(1), v, ld_value, dH, dv, T(0), dkk, ld_key);
        // rho = rowsum(S_out (.) dH) = exp(b_*) (.) rowsum(S_in (.) dH) + sum_t k_t (.) dk_t^inter.
        using StateMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
        const ConstRow<T> decay_last(cs.decay_in.data() + zu(L - 1) * zu(dk), dk);
        Row<T> rho(cs.rho.data(), dk);
        rho = decay_last * (StateMap(S_in, dk, dv) * StateMap(dH, dk, dv)).rowwise().sum();
        for (int t = 0; t < L; ++t) {
          Row<T> dq_t(dq + zu(t) * zu(ld_key), dk), dk_t(dkk + zu(t) * zu(ld_key), dk);
          dq_t *= row(cs.decay_in, t);
          dk_t *= row(cs.decay_out, t);
          rho += ConstRow<T>(k + zu(t) * zu(ld_key), dk) * dk_t;
        }

        // (D3) intra-chunk parts, with the sub-chunk factorisation of chunk_scores:
        //   dq_t += sum_{s <= t} dA_ts k_s (.) exp(b_t - b_s),  dk_s += sum_{t >= s} dA_ts q_t (.) exp(b_t - b_s).
        for (int i0 = 0; i0 < L; i0 += sub) {
          const int i1 = std::min(L, i0 + sub), rows = i1 - i0;
          if (i0 > 0) {
            sub_chunk_keys(i0, dk, k, ld_key, cs);
            // dq_I += exp(b_I - b_i0) (.) (dA[I, 0:i0] K_rel): [rows, i0] x [i0, d_k].
            gemm(Trans::no, Trans::no, rows, dk, i0, T(1), dA + zu(i0) * zu(L), L, cs.k_rel.data(), dk, T(0),
                 cs.block_q.data(), dk);
            // dk_s += exp(b_i0 - b_s) (.) (dA[I, 0:i0]^T Q_rel_I) for s < i0: [i0, rows] x [rows, d_k].
            gemm(Trans::yes, Trans::no, i0, dk, rows, T(1), dA + zu(i0) * zu(L), L, cs.q_rel.data() + zu(i0) * zu(dk),
                 dk, T(0), cs.block_k.data(), dk);
            for (int t = i0; t < i1; ++t)
              Row<T>(dq + zu(t) * zu(ld_key), dk) += row(cs.decay_sub, t) * row(cs.block_q, t - i0);
            for (int s = 0; s < i0; ++s)
              Row<T>(dkk + zu(s) * zu(ld_key), dk) += row(cs.key_decay, s) * row(cs.block_k, s);
          }
          // Diagonal block: e = exp(b_t - b_s), advanced one gate per row t.
          Row<T> e(cs.diag_decay.data(), dk);
          for (int s = i0; s < i1; ++s) {
            const ConstRow<T> k_s(k + zu(s) * zu(ld_key), dk);
            Row<T> dk_s(dkk + zu(s) * zu(ld_key), dk);
            e.setOnes();
            for (int t = s; t < i1; ++t) {
              if (t > s) e *= row(cs.gate, t);
              const T w = dA[zu(t) * zu(L) + zu(s)];
              Row<T>(dq + zu(t) * zu(ld_key), dk) += w * k_s * e;
              dk_s += w * ConstRow<T>(q + zu(t) * zu(ld_key), dk) * e;
            }
          }
        }

        // (D6) dg_t = sum_{u >= t in the chunk} (q_u (.) dq_u - k_u (.) dk_u) + rho.
        for (int t = L - 1; t >= 0; --t) {
          const std::size_t r = zu(t) * zu(ld_key);
          rho += ConstRow<T>(q + r, dk) * ConstRow<T>(dq + r, dk) - ConstRow<T>(k + r, dk) * ConstRow<T>(dkk + r, dk);
          Row<T>(dg + r, dk) = rho;
        }

        // dH(c-1) = Diag(exp(b_*)) dH(c) + Q_bar^T dO: [L, d_k]^T x [L, d_v].
        for (int i = 0; i < dk; ++i) Row<T>(dH + zu(i) * zu(dv), dv) *= decay_last(i);
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
