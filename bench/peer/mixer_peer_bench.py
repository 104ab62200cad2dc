#!/usr/bin/python3
"""Forward+backward throughput of one mixer LAYER of the PyTorch peer (one process, one thread).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 /usr/bin/python3 \
        bench/peer/mixer_peer_bench.py bench/configs/gla.yaml --expt build/release/expt \
        [--set model.d_model=256] [--iters 10] [--warmup 2]

The peer of bench/mixer_layers.cpp: the mixer of expt_peer.PeerModel (same parameter names,
shapes and chunked algorithms as expt's layer) at batch train.batch_size and length task.seq_len
of the resolved config (`expt validate --print`). One iteration = parameter gradients set to None,
y = mixer(x), y.backward(dy), with x (requires_grad, so dx is computed as on the expt side) and dy
N(0, 1). Prints one JSON object: tokens/s by wall time and by process CPU time, parameter count.
"""

import argparse
import json
import os
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import torch  # noqa: E402  (after the thread variables)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expt_peer  # noqa: E402
from peer_bench import resolve_config  # noqa: E402

PREFIX = "blocks.0.mixer."


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--expt", default="build/release/expt")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    cfg = resolve_config(args.expt, args.config, args.sets)
    B, L, d = cfg["train"]["batch_size"], cfg["task"]["seq_len"], cfg["model"]["d_model"]
    model = expt_peer.PeerModel(cfg, 256)
    model.init_parameters(cfg["seed"])
    params = [w for name, w in model.params.items() if name.startswith(PREFIX)]
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn(B, L, d, generator=gen).requires_grad_(True)
    dy = torch.randn(B, L, d, generator=gen)

    wall = cpu = 0.0
    for it in range(args.warmup + args.iters):
        w0, c0 = time.perf_counter(), time.process_time()
        for w in params:
            w.grad = None
        x.grad = None
        y = model.mixer(PREFIX, x)
        y.backward(dy)
        if it >= args.warmup:
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
    tokens = B * L * args.iters
    out = {
        "side": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": {"mixer": cfg["model"]["mixer"]["type"], "d_model": d, "heads": cfg["model"]["mixer"]["heads"],
                   "batch": B, "seq_len": L},
        "n_params": sum(w.numel() for w in params),
        "iters": args.iters,
        "step_s": wall / args.iters,
        "cpu_step_s": cpu / args.iters,
        "tokens_per_s": tokens / wall,
        "tokens_per_cpu_s": tokens / cpu,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
