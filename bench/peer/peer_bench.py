#!/usr/bin/python3
"""Training-step throughput of the PyTorch peer for an expt config (one process, one thread).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peer/peer_bench.py \
        --expt build/release/expt bench/configs/gla.yaml [--set model.d_model=256] [--steps 20]

The config is resolved by `expt validate --print` (every default filled in, exactly as expt reads
it). Prints one JSON object: tokens/s of a full step (forward + loss, backward, clip, optimizer),
per-phase times, parameter count, losses, and ("blas") the time per step spent in the BLAS operators
(aten::mm, bmm, ...; self CPU time under torch.profiler, in --profile-steps extra steps after the
timed ones). Batches are uniform random tokens made before the timed
loop (expt's data phase is timed on its side; it is < 1 % of its step).
"""

import argparse
import json
import os
import subprocess
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import torch  # noqa: E402  (after the thread variables)
import yaml  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expt_peer  # noqa: E402


def openblas_core():
    """The kernel set of the OpenBLAS this torch calls for fp32 mm (the process's libopenblas)."""
    import ctypes
    try:  # RTLD_NOLOAD: only if torch already loaded it (a second copy would pick its own core)
        lib = ctypes.CDLL("libopenblas.so.0", mode=os.RTLD_NOLOAD)
    except OSError:
        return "not loaded"
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def resolve_config(expt, config, sets):
    cmd = [expt, "validate", config, "--print"] + [a for s in sets for a in ("--set", s)]
    return yaml.safe_load(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def task_vocab(cfg):
    if cfg["model"]["vocab_size"] > 0:
        return cfg["model"]["vocab_size"]
    task = cfg["task"]
    if task["type"] == "text":
        return 256
    if task["type"] in ("tokens", "mqar"):
        return task["vocab_size"]
    raise SystemExit(f"peer_bench: set model.vocab_size for task.type {task['type']}")


# The aten operators that call BLAS (sgemm/sgemv/sdot) on CPU; their self time is the BLAS call plus
# a thin dispatch layer. expt bench's "BLAS" columns count its kernels/gemm calls the same way.
BLAS_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::mv", "aten::addmv",
            "aten::dot")


def blas_time(profiler, steps):
    """Self CPU time per step of the BLAS operators in a torch.profiler run of `steps` steps."""
    ops = {e.key: e for e in profiler.key_averages() if e.key in BLAS_OPS}
    return {"s": sum(e.self_cpu_time_total for e in ops.values()) * 1e-6 / steps,
            "calls": sum(e.count for e in ops.values()) / steps,
            "ops": {k: e.self_cpu_time_total * 1e-6 / steps for k, e in ops.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--expt", default="build/release/expt")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile-steps", type=int, default=2,
                    help="after the timed steps, this many steps under torch.profiler for the BLAS time (0: none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    cfg = resolve_config(args.expt, args.config, args.sets)
    vocab = task_vocab(cfg)
    B, L = cfg["train"]["batch_size"], cfg["task"]["seq_len"]
    model = expt_peer.PeerModel(cfg, vocab)
    model.init_parameters(cfg["seed"])
    optimizer = expt_peer.make_optimizer(model, cfg["optimizer"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    total = args.warmup + args.steps

    phases = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    losses = []
    params = list(model.params.values())
    clip = cfg["train"]["grad_clip"]
    data = torch.randint(0, vocab, (total + args.profile_steps, B, L + 1), generator=gen)

    def train_step(step):
        inputs, targets = data[step, :, :-1], data[step, :, 1:]
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model.forward(inputs, targets)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        losses.append(loss.item())
        t3 = time.perf_counter()
        if args.warmup <= step < total:
            phases["forward"] += t1 - t0
            phases["backward"] += t2 - t1
            phases["optimizer"] += t3 - t2

    for step in range(args.warmup):
        train_step(step)
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(args.warmup, total):
        train_step(step)
    step_s = (time.perf_counter() - start) / args.steps
    cpu_step_s = (time.process_time() - cpu_start) / args.steps
    blas = None
    if args.profile_steps > 0:  # after the timed steps: the profiler slows the step down
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            for step in range(total, total + args.profile_steps):
                train_step(step)
        blas = blas_time(profiler, args.profile_steps)
    out = {
        "side": "pytorch",
        "torch": torch.__version__,
        "openblas_core": openblas_core(),
        "threads": torch.get_num_threads(),
        "config": {"mixer": cfg["model"]["mixer"]["type"], "optimizer": cfg["optimizer"]["type"],
                   "d_model": cfg["model"]["d_model"], "n_layers": cfg["model"]["n_layers"], "batch": B,
                   "seq_len": L, "vocab": vocab},
        "n_params": model.n_params(),
        "steps": args.steps,
        "step_s": step_s,
        "tokens_per_s": B * L / step_s,
        "cpu_step_s": cpu_step_s,
        "tokens_per_cpu_s": B * L / cpu_step_s,
        "phases": {k: {"s": v / args.steps, "share": v / args.steps / step_s} for k, v in phases.items()},
        "losses": losses[:total],
    }
    if blas is not None:
        out["blas"] = blas
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
