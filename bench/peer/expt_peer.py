"""PyTorch CPU peer of expt's language models and optimizers (docs/performance.md, issue 9).

The same functions as expt builds them (docs/layers.md): Embedding -> n_layers pre-norm blocks
(RMSNorm -> mixer, RMSNorm -> SwiGLU) -> RMSNorm -> head (tied or not), with the mixers
attention (RoPE, causal softmax), gla (fla GatedLinearAttention) and the delta-rule family
(deltanet, deltaproduct, gated_deltaproduct), written the way a PyTorch user writes them on a CPU:
chunked forward in plain tensor ops, backward by autograd.

Parameters are a dict name -> tensor with expt's names, shapes ([out, in]) and roles, registered
in expt's order, so that a dump of expt's weights (`expt bench --dump DIR`) loads by name.

Chunked kernels:
  gla         one level of chunks of C = chunk_size: intra-chunk scores (q e^b)(k e^-b)^T with b the
              in-chunk cumulative log-gate, inter-chunk through the K-major state (fla's chunk form
              without sub-chunks; exact in fp32 while |b| stays small within a chunk, as at init).
  delta rule  WY/UT form per chunk of C virtual steps: U = L^-1 diag(beta) (V - K S0) with
              L = I + tril(diag(beta) K K^T, -1) (triangular solve), o = s (q S0 + (q K^T (.) M) U),
              S += K^T U; DeltaProduct runs it on the interleaved virtual sequence of length L n_h and
              reads the query once per token, after its last virtual step.
Optimizers: AdamW (torch.optim.AdamW, expt's groups) and Muon as docs/optimizers.md states it.
"""

import math

import torch
import torch.nn.functional as F

from peer_types import PEER_MIXERS, PEER_OPTIMIZERS

MATRIX, EMBEDDING, HEAD, VECTOR = "matrix", "embedding", "head", "vector"


def swiglu_width(cfg):
    mlp = cfg["model"]["mlp"]
    if mlp.get("intermediate_size", 0) > 0:
        return mlp["intermediate_size"]
    raw = int(cfg["model"]["d_model"] * mlp["hidden_ratio"] * 2 / 3)
    return 256 * ((raw + 255) // 256)


class PeerModel:
    """Functional model: self.params holds every tensor, forward() computes the mean loss."""

    def __init__(self, cfg, vocab):
        self.cfg = cfg
        m = cfg["model"]
        self.mx = m["mixer"]
        if self.mx["type"] not in PEER_MIXERS:
            raise ValueError(f"peer: mixer {self.mx['type']} is not implemented ({', '.join(PEER_MIXERS)})")
        self.d = m["d_model"]
        self.vocab = vocab
        self.eps = m["norm_eps"]
        self.params = {}
        self.roles = {}
        d = self.d
        self._add("embeddings.weight", (vocab, d), EMBEDDING)
        for layer in range(m["n_layers"]):
            p = f"blocks.{layer}."
            if self.mx["type"] != "none":
                self._add(p + "attn_norm.weight", (d,), VECTOR)
                self._add_mixer(p + "mixer.")
            if m["mlp"]["type"] == "swiglu":
                width = swiglu_width(cfg)
                self._add(p + "mlp_norm.weight", (d,), VECTOR)
                self._add(p + "mlp.gate_proj.weight", (width, d), MATRIX)
                self._add(p + "mlp.up_proj.weight", (width, d), MATRIX)
                self._add(p + "mlp.down_proj.weight", (d, width), MATRIX)
        self._add("norm.weight", (d,), VECTOR)
        if not m["tie_embeddings"]:
            self._add("lm_head.weight", (vocab, d), HEAD)

    # ---- parameters -------------------------------------------------------------------------

    def _add(self, name, shape, role):
        self.params[name] = torch.empty(shape, dtype=torch.float32)
        self.roles[name] = role

    def _delta_sizes(self):
        mx, d, H = self.mx, self.d, self.mx["heads"]
        if mx["type"] == "deltanet":
            return 1, int(d * mx["expand_k"]) // H, int(d * mx["expand_v"]) // H
        dk = mx["head_dim"] if mx["head_dim"] > 0 else d // H
        return mx["num_householder"], dk, int(dk * mx["expand_v"])

    def _forget_gate(self):
        return self.mx["type"] == "gated_deltaproduct" or self.mx.get("use_forget_gate", False)

    def _add_mixer(self, p):
        mx, d, H = self.mx, self.d, self.mx["heads"]
        t = mx["type"]
        if t == "attention":
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                self._add(p + n + ".weight", (d, d), MATRIX)
        elif t == "gla":
            DK, DV, r, W = int(d * mx["expand_k"]), int(d * mx["expand_v"]), mx["gate_low_rank_dim"], mx["conv_size"]
            self._add(p + "q_proj.weight", (DK, d), MATRIX)
            self._add(p + "k_proj.weight", (DK, d), MATRIX)
            self._add(p + "v_proj.weight", (DV, d), MATRIX)
            if mx["use_output_gate"]:
                self._add(p + "g_proj.weight", (DV, d), MATRIX)
            if mx["use_short_conv"]:
                self._add(p + "q_conv1d.weight", (DK, W), VECTOR)
                self._add(p + "k_conv1d.weight", (DK, W), VECTOR)
                self._add(p + "v_conv1d.weight", (DV, W), VECTOR)
            self._add(p + "gk_proj.0.weight", (r, d), MATRIX)
            self._add(p + "gk_proj.1.weight", (DK, r), MATRIX)
            self._add(p + "gk_proj.1.bias", (DK,), VECTOR)
            self._add(p + "g_norm.weight", (DV // H,), VECTOR)
            self._add(p + "o_proj.weight", (d, DV), MATRIX)
        else:
            nh, dk, dv = self._delta_sizes()
            W = mx["conv_size"]
            self._add(p + "q_proj.weight", (H * dk, d), MATRIX)
            self._add(p + "k_proj.weight", (nh * H * dk, d), MATRIX)
            self._add(p + "v_proj.weight", (nh * H * dv, d), MATRIX)
            self._add(p + "b_proj.weight", (nh * H, d), MATRIX)
            if self._forget_gate():
                self._add(p + "a_proj.weight", (H, d), MATRIX)
                self._add(p + "A_log", (H,), VECTOR)
                self._add(p + "dt_bias", (H,), VECTOR)
            if mx["use_short_conv"]:
                self._add(p + "q_conv1d.weight", (H * dk, W), VECTOR)
                self._add(p + "k_conv1d.weight", (nh * H * dk, W), VECTOR)
                self._add(p + "v_conv1d.weight", (nh * H * dv, W), VECTOR)
            if mx["use_output_gate"]:
                self._add(p + "g_proj.weight", (H * dv, d), MATRIX)
            self._add(p + "o_norm.weight", (dv,), VECTOR)
            self._add(p + "o_proj.weight", (d, H * dv), MATRIX)

    def init_parameters(self, seed):
        """expt's `normal` / `rescale` scheme with torch's generator (same distribution, other draws)."""
        m = self.cfg["model"]
        gen = torch.Generator().manual_seed(seed)
        std = m["init_std"]
        rescale = 1.0 / math.sqrt(2.0 * m["n_layers"]) if m["init"] == "rescale" else 1.0
        with torch.no_grad():
            for name, w in self.params.items():
                if name.endswith("conv1d.weight"):
                    w.normal_(0.0, std, generator=gen)
                elif name.endswith("gk_proj.1.bias"):
                    w.zero_()
                elif name.endswith("A_log"):
                    w.copy_(torch.log(16.0 * (1.0 - torch.rand(w.shape, generator=gen, dtype=torch.float64))))
                elif name.endswith("dt_bias"):
                    u = torch.rand(w.shape, generator=gen, dtype=torch.float64)
                    dt = torch.exp(math.log(1e-3) + u * (math.log(1e-1) - math.log(1e-3))).clamp(min=1e-4)
                    w.copy_(dt + torch.log(-torch.expm1(-dt)))
                elif self.roles[name] == VECTOR:
                    w.fill_(1.0)
                else:
                    s = std * (rescale if name.endswith("o_proj.weight") or name.endswith("down_proj.weight") else 1.0)
                    w.normal_(0.0, s, generator=gen)
        for w in self.params.values():
            w.requires_grad_(True)

    def load_flat(self, flat, manifest_params):
        """Loads expt's flat parameter buffer (manifest from `expt bench --dump`) by name."""
        with torch.no_grad():
            for p in manifest_params:
                w = self.params[p["name"]]
                w.copy_(flat[p["offset"]: p["offset"] + p["size"]].view(w.shape))
        for w in self.params.values():
            w.requires_grad_(True)

    def n_params(self):
        return sum(w.numel() for w in self.params.values())

    # ---- forward ----------------------------------------------------------------------------

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def forward(self, inputs, targets):
        """inputs, targets: int64 [B, L]; returns the mean cross-entropy over labelled positions."""
        P = self.params
        x = F.embedding(inputs, P["embeddings.weight"])
        for layer in range(self.cfg["model"]["n_layers"]):
            p = f"blocks.{layer}."
            if self.mx["type"] != "none":
                x = x + self.mixer(p + "mixer.", self.rmsnorm(x, P[p + "attn_norm.weight"]))
            if self.cfg["model"]["mlp"]["type"] == "swiglu":
                h = self.rmsnorm(x, P[p + "mlp_norm.weight"])
                hidden = F.silu(F.linear(h, P[p + "mlp.gate_proj.weight"])) * F.linear(h, P[p + "mlp.up_proj.weight"])
                x = x + F.linear(hidden, P[p + "mlp.down_proj.weight"])
        x = self.rmsnorm(x, P["norm.weight"])
        head = P["embeddings.weight"] if self.cfg["model"]["tie_embeddings"] else P["lm_head.weight"]
        logits = F.linear(x, head)
        return F.cross_entropy(logits.reshape(-1, self.vocab), targets.reshape(-1), ignore_index=-1)

    def mixer(self, p, x):
        t = self.mx["type"]
        if t == "attention":
            return self.attention(p, x)
        if t == "gla":
            return self.gla(p, x)
        return self.delta(p, x)

    def short_conv(self, x, w):
        """SiLU(causal depthwise conv): x [B, L, C], w [C, W]; w[:, W-1] multiplies the current token."""
        L, C, W = x.shape[1], x.shape[2], w.shape[1]
        y = F.conv1d(x.transpose(1, 2), w.unsqueeze(1), padding=W - 1, groups=C)[..., :L]
        return F.silu(y.transpose(1, 2))

    def head_norm(self, o, w, gate):
        """Per-head RMSNorm over d_v with one shared weight, times SiLU(gate): o, gate [B, L, H, d_v]."""
        y = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.eps) * w
        return y * F.silu(gate) if gate is not None else y

    def attention(self, p, x):
        P, B, L, H = self.params, x.shape[0], x.shape[1], self.mx["heads"]
        hd = self.d // H

        def heads(t):
            return t.view(B, L, H, hd).transpose(1, 2)

        q, k, v = (heads(F.linear(x, P[p + n + ".weight"])) for n in ("q_proj", "k_proj", "v_proj"))
        inv_freq = self.mx["rope_base"] ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
        angle = torch.arange(L, dtype=torch.float64)[:, None] * inv_freq[None, :]
        cos, sin = angle.cos().float(), angle.sin().float()

        def rope(t):
            t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
            return torch.cat((t1 * cos - t2 * sin, t2 * cos + t1 * sin), dim=-1)

        q, k = rope(q), rope(k)
        scores = (q @ k.transpose(-1, -2)) * hd ** -0.5
        mask = torch.ones(L, L, dtype=torch.bool).triu(1)
        o = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1) @ v
        return F.linear(o.transpose(1, 2).reshape(B, L, self.d), P[p + "o_proj.weight"])

    def gla(self, p, x):
        P, mx, B, L, H = self.params, self.mx, x.shape[0], x.shape[1], self.mx["heads"]
        q, k, v = (F.linear(x, P[p + n + ".weight"]) for n in ("q_proj", "k_proj", "v_proj"))
        if mx["use_short_conv"]:
            q = self.short_conv(q, P[p + "q_conv1d.weight"])
            k = self.short_conv(k, P[p + "k_conv1d.weight"])
            v = self.short_conv(v, P[p + "v_conv1d.weight"])
        z = F.linear(F.linear(x, P[p + "gk_proj.0.weight"]), P[p + "gk_proj.1.weight"], P[p + "gk_proj.1.bias"])
        g = F.logsigmoid(z) / mx["gate_logit_normalizer"]
        dk, dv = q.shape[-1] // H, v.shape[-1] // H
        o = chunk_gla(*(t.view(B, L, H, -1).transpose(1, 2) for t in (q, k, v, g)), dk ** -0.5, mx["chunk_size"])
        o = o.transpose(1, 2)  # [B, L, H, dv]
        gate = F.linear(x, P[p + "g_proj.weight"]).view(B, L, H, dv) if mx["use_output_gate"] else None
        y = self.head_norm(o, P[p + "g_norm.weight"], gate).reshape(B, L, H * dv)
        return F.linear(y, P[p + "o_proj.weight"])

    def delta(self, p, x):
        P, mx, B, L, H = self.params, self.mx, x.shape[0], x.shape[1], self.mx["heads"]
        nh, dk, dv = self._delta_sizes()
        q, k, v = (F.linear(x, P[p + n + ".weight"]) for n in ("q_proj", "k_proj", "v_proj"))
        if mx["use_short_conv"]:
            q = self.short_conv(q, P[p + "q_conv1d.weight"])
            k = self.short_conv(k, P[p + "k_conv1d.weight"])
            v = self.short_conv(v, P[p + "v_conv1d.weight"])
        else:
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        beta = torch.sigmoid(F.linear(x, P[p + "b_proj.weight"]))
        if mx["allow_neg_eigval"]:
            beta = beta * 2.0
        g = None
        if self._forget_gate():
            u = F.linear(x, P[p + "a_proj.weight"]) + P[p + "dt_bias"]
            g = -torch.exp(P[p + "A_log"]) * F.softplus(u)  # [B, L, H]
        # Per-head L2 norm; the virtual sequence: feature j H d + h d + m is step j of head h.
        q = q.view(B, L, H, dk)
        q = (q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6)).transpose(1, 2)  # [B, H, L, dk]
        k = k.view(B, L, nh, H, dk)
        k = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
        k = k.permute(0, 3, 1, 2, 4).reshape(B, H, L * nh, dk)
        v = v.view(B, L, nh, H, dv).permute(0, 3, 1, 2, 4).reshape(B, H, L * nh, dv)
        beta = beta.view(B, L, nh, H).permute(0, 3, 1, 2).reshape(B, H, L * nh)
        if g is not None:  # decay once per token, at its first virtual step
            gv = torch.zeros(B, H, L, nh, dtype=x.dtype)
            gv = torch.cat((g.transpose(1, 2).unsqueeze(-1), gv[..., 1:]), dim=-1).reshape(B, H, L * nh)
        else:
            gv = None
        o = chunk_delta_product(q, k, v, beta, gv, nh, dk ** -0.5, mx["chunk_size"])  # [B, H, L, dv]
        o = o.transpose(1, 2)
        gate = F.linear(x, P[p + "g_proj.weight"]).view(B, L, H, dv) if mx["use_output_gate"] else None
        y = self.head_norm(o, P[p + "o_norm.weight"], gate).reshape(B, L, H * dv)
        return F.linear(y, P[p + "o_proj.weight"])


def chunk_gla(q, k, v, g, scale, C):
    """q, k, g [B, H, L, dk], v [B, H, L, dv] -> o [B, H, L, dv] (zero initial state)."""
    B, H, L, dk = q.shape
    dv = v.shape[-1]
    pad = (-L) % C
    if pad:
        q, k, v, g = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v, g))
    N = (L + pad) // C
    q, k, v, g = (t.reshape(B, H, N, C, -1) for t in (q, k, v, g))
    b = g.cumsum(dim=3)  # inclusive in-chunk cumulative log-decay
    qb = q * torch.exp(b) * scale
    kb = k * torch.exp(-b)
    mask = torch.ones(C, C, dtype=torch.bool).triu(1)
    scores = (qb @ kb.transpose(-1, -2)).masked_fill(mask, 0.0)
    o_intra = scores @ v
    b_last = b[:, :, :, -1:, :]  # [B, H, N, 1, dk]
    k_to_end = k * torch.exp(b_last - b)  # key weighted by its decay to the chunk end
    S = torch.zeros(B, H, dk, dv, dtype=q.dtype)
    inter = []
    for n in range(N):
        inter.append(qb[:, :, n] @ S)
        S = torch.exp(b_last[:, :, n, 0, :]).unsqueeze(-1) * S + k_to_end[:, :, n].transpose(-1, -2) @ v[:, :, n]
    o = o_intra + torch.stack(inter, dim=2)
    return o.reshape(B, H, N * C, dv)[:, :, :L]


def chunk_delta_product(q, k, v, beta, g, nh, scale, C):
    """Delta rule over the virtual sequence (WY/UT chunks of C virtual steps), queried once per token.

    q [B, H, L, dk]; k [B, H, L nh, dk]; v [B, H, L nh, dv]; beta [B, H, L nh]; g [B, H, L nh] or
    None (log-decay at each virtual step). Returns o [B, H, L, dv]: o_t = s S_t^T q_t after the last
    virtual step of token t. C is rounded down to a multiple of nh so that chunks hold whole tokens.
    """
    B, H, Lv, dk = k.shape
    dv = v.shape[-1]
    L = Lv // nh
    C = max(nh, (min(C, Lv) // nh) * nh)
    pad = (-Lv) % C
    if pad:
        k, v = (F.pad(t, (0, 0, 0, pad)) for t in (k, v))
        beta = F.pad(beta, (0, pad))
        q = F.pad(q, (0, 0, 0, pad // nh))
        if g is not None:
            g = F.pad(g, (0, pad))
    N = (Lv + pad) // C
    Ct = C // nh  # tokens per chunk
    k, v = k.reshape(B, H, N, C, dk), v.reshape(B, H, N, C, dv)
    beta = beta.reshape(B, H, N, C, 1)
    q = q.reshape(B, H, N, Ct, dk) * scale
    eye = torch.eye(C, dtype=k.dtype)
    strict = torch.ones(C, C, dtype=torch.bool).tril(-1)
    if g is None:
        # L = I + tril(diag(beta) K K^T, -1);  U_hat = L^-1 diag(beta) V,  W = L^-1 diag(beta) K.
        lower = eye + ((beta * k) @ k.transpose(-1, -2)) * strict
        u_hat = torch.linalg.solve_triangular(lower, beta * v, upper=False, unitriangular=True)
        w = torch.linalg.solve_triangular(lower, beta * k, upper=False, unitriangular=True)
    else:
        # Gated: with b the in-chunk cumulative log-decay, decay(i <- j) = e^(b_i - b_j).
        b = g.reshape(B, H, N, C).cumsum(-1)
        decay = torch.exp((b.unsqueeze(-1) - b.unsqueeze(-2)).masked_fill(~strict, 0.0)) * strict
        lower = eye + ((beta * k) @ k.transpose(-1, -2)) * decay
        u_hat = torch.linalg.solve_triangular(lower, beta * v, upper=False, unitriangular=True)
        w = torch.linalg.solve_triangular(lower, beta * k * torch.exp(b).unsqueeze(-1), upper=False,
                                          unitriangular=True)
    # Query of token t sees virtual steps j <= t nh + nh - 1 of its chunk.
    token_end = torch.arange(Ct)[:, None] * nh + nh - 1
    visible = torch.arange(C)[None, :] <= token_end  # [Ct, C]
    S = torch.zeros(B, H, dk, dv, dtype=k.dtype)
    out = []
    for n in range(N):
        u = u_hat[:, :, n] - w[:, :, n] @ S
        scores = q[:, :, n] @ k[:, :, n].transpose(-1, -2)
        if g is None:
            out.append(q[:, :, n] @ S + (scores * visible) @ u)
            S = S + k[:, :, n].transpose(-1, -2) @ u
        else:
            bn = b[:, :, n]  # [B, H, C]
            b_tok = bn[..., nh - 1:: nh]  # cumulative decay at each token's last step
            rel = torch.exp((b_tok.unsqueeze(-1) - bn.unsqueeze(-2)).masked_fill(~visible, 0.0)) * visible
            out.append(torch.exp(b_tok).unsqueeze(-1) * (q[:, :, n] @ S) + (scores * rel) @ u)
            b_end = bn[..., -1:]
            S = torch.exp(b_end).unsqueeze(-1) * S + (k[:, :, n] * torch.exp(b_end - bn).unsqueeze(-1)).transpose(
                -1, -2) @ u
    o = torch.stack(out, dim=2).reshape(B, H, N * Ct, dv)
    return o[:, :, :L]


# ---- optimizers ---------------------------------------------------------------------------------

KELLER_JORDAN = (3.4445, -4.7750, 2.0315)
CLASSIC_QUINTIC = (15 / 8, -10 / 8, 3 / 8)


def adam_kwargs(opt, lr):
    return dict(lr=lr, betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"], foreach=True)


def make_adamw(model, opt):
    """expt's adamw groups: matrix + head decayed; vector (and embedding unless decay_embeddings) not."""
    decay_roles = {MATRIX, HEAD} | ({EMBEDDING} if opt["decay_embeddings"] else set())
    decay = [w for n, w in model.params.items() if model.roles[n] in decay_roles]
    no_decay = [w for n, w in model.params.items() if model.roles[n] not in decay_roles]
    groups = [{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([gr for gr in groups if gr["params"]], **adam_kwargs(opt, opt["lr"]))


class Muon:
    """Muon per docs/optimizers.md: every `matrix` (not matching adam_patterns) gets
    M = mu M + (1 - mu) G, U = (1 - mu) G + mu M (Nesterov) or M, O = NS_k(U / (|U|_F + ns_eps))
    (Gram of the short side), W = W (1 - lr wd) - lr scale(m, n) O; everything else goes to AdamW at
    lr adam_lr_ratio with adam_weight_decay on head (and embedding if decay_embeddings)."""

    def __init__(self, model, opt):
        if opt["adam_patterns"]:
            raise ValueError("peer Muon: adam_patterns is not implemented")
        self.opt = opt
        self.lr = opt["lr"]
        self.main = [w for n, w in model.params.items() if model.roles[n] == MATRIX]
        self.momentum = [torch.zeros_like(w) for w in self.main]
        self.coeffs = KELLER_JORDAN if opt["ns_coefficients"] == "keller_jordan" else CLASSIC_QUINTIC
        decayed = {HEAD} | ({EMBEDDING} if opt["decay_embeddings"] else set())
        adam_decay = [w for n, w in model.params.items() if model.roles[n] in decayed]
        adam_plain = [w for n, w in model.params.items() if model.roles[n] not in decayed | {MATRIX}]
        groups = [{"params": adam_decay, "weight_decay": opt["adam_weight_decay"]},
                  {"params": adam_plain, "weight_decay": 0.0}]
        self.adam = torch.optim.AdamW([gr for gr in groups if gr["params"]],
                                      **adam_kwargs(opt, opt["lr"] * opt["adam_lr_ratio"]))

    def newton_schulz(self, u):
        a, b, c = self.coeffs
        transposed = u.shape[0] > u.shape[1]
        x = u.T if transposed else u
        x = x / (x.norm() + self.opt["ns_eps"])
        for _ in range(self.opt["ns_steps"]):
            A = x @ x.T
            x = a * x + (b * A + c * (A @ A)) @ x
        return x.T if transposed else x

    def set_lr(self, lr):
        self.lr = lr
        for gr in self.adam.param_groups:
            gr["lr"] = lr * self.opt["adam_lr_ratio"]

    @torch.no_grad()
    def step(self):
        mu, lr, wd = self.opt["momentum"], self.lr, self.opt["weight_decay"]
        for w, mom in zip(self.main, self.momentum):
            g = w.grad
            mom.mul_(mu).add_(g, alpha=1 - mu)
            u = g * (1 - mu) + mom * mu if self.opt["nesterov"] else mom
            m, n = w.shape
            scale = math.sqrt(max(1.0, m / n)) if self.opt["scale"] == "original" else 0.2 * math.sqrt(max(m, n))
            w.mul_(1 - lr * wd).add_(self.newton_schulz(u), alpha=-lr * scale)
        self.adam.step()

    def zero_grad(self, set_to_none=True):
        for w in self.main:
            w.grad = None
        self.adam.zero_grad(set_to_none=set_to_none)


def make_optimizer(model, opt):
    if opt["type"] == "adamw":
        if opt["eps_mode"] != "torch":
            raise ValueError("peer AdamW: only eps_mode torch (torch.optim.AdamW)")
        return make_adamw(model, opt)
    if opt["type"] == "muon":
        return Muon(model, opt)
    raise ValueError(f"peer: optimizer {opt['type']} is not implemented ({', '.join(PEER_OPTIMIZERS)})")


def set_lr(optimizer, lr):
    if isinstance(optimizer, Muon):
        optimizer.set_lr(lr)
    else:
        for gr in optimizer.param_groups:
            gr["lr"] = lr


def train_step(model, optimizer, inputs, targets, grad_clip, lr=None):
    """One full step: forward + loss, backward, clip, optimizer. Returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = model.forward(inputs, targets)
    loss.backward()
    params = list(model.params.values())
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if lr is not None:
        set_lr(optimizer, lr)
    optimizer.step()
    return loss.item()
