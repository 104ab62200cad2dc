#!/usr/bin/python3
"""Checks that the PyTorch peer computes the same model and optimizer step as expt.

    /usr/bin/python3 bench/peer/check_same_model.py --expt build/release/expt bench/configs/gla.yaml \
        [--set optimizer.type=muon] [--set model.d_model=256]

Runs `expt bench --dump` (2 steps), loads expt's initial weights into the peer by name, and compares:
parameter names, shapes and count; the loss of step 1 on expt's batch; every gradient of step 1;
every parameter after the first optimizer step (clip + AdamW or Muon); the loss of step 2. Prints
the largest relative differences and exits 1 when one exceeds its fp32 tolerance.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import expt_peer  # noqa: E402

# fp32 tolerances: two implementations summing in different orders (chunked kernels, BLAS blocking).
LOSS_TOL = 1e-4    # relative, loss
GRAD_TOL = 2e-3    # relative to the largest |g| of the tensor
UPDATE_TOL = 1e-3  # relative L2 difference of the whole first update


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--expt", default="build/release/expt")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sets = [a for s in args.sets for a in ("--set", s)]

    with tempfile.TemporaryDirectory() as dump:
        run = subprocess.run([args.expt, "bench", args.config, *sets, "--warmup", "0", "--steps", "2", "--format",
                              "json", "--dump", dump], capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"FAIL: expt bench --dump exited {run.returncode}: {run.stderr}")
        manifest = json.load(open(os.path.join(dump, "manifest.json")))

        def load(name, dtype):
            return torch.from_numpy(np.fromfile(os.path.join(dump, name), dtype=dtype).copy())

        params0, grads1, params1 = load("params0.f32", np.float32), load("grads1.f32", np.float32), load(
            "params1.f32", np.float32)
        B, L = manifest["batch"], manifest["seq_len"]
        batches = [(load(f"inputs{s}.i32", np.int32).long().view(B, L), load(f"targets{s}.i32", np.int32).long().view(
            B, L)) for s in (1, 2)]

    cfg = yaml.safe_load(manifest["config_yaml"])
    model = expt_peer.PeerModel(cfg, manifest["vocab"])
    failures = []

    expt_shapes = {p["name"]: tuple(p["shape"]) for p in manifest["params"]}
    peer_shapes = {n: tuple(w.shape) for n, w in model.params.items()}
    n_expt = sum(p["size"] for p in manifest["params"])
    print(f"parameters: expt {n_expt} in {len(expt_shapes)} tensors, peer {model.n_params()} in {len(peer_shapes)}")
    if expt_shapes != peer_shapes:
        only_expt = sorted(set(expt_shapes.items()) - set(peer_shapes.items()))
        only_peer = sorted(set(peer_shapes.items()) - set(expt_shapes.items()))
        raise SystemExit(f"FAIL: parameter sets differ; expt only {only_expt[:5]}, peer only {only_peer[:5]}")
    roles = {p["name"]: p["role"] for p in manifest["params"]}
    if roles != model.roles:
        raise SystemExit("FAIL: parameter roles differ")

    model.load_flat(params0, manifest["params"])
    optimizer = expt_peer.make_optimizer(model, cfg["optimizer"])
    optimizer.zero_grad(set_to_none=True)
    loss1 = model.forward(*batches[0])
    loss1.backward()

    def rel(a, b):
        return float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))

    d_loss1 = abs(loss1.item() - manifest["losses"][0]) / abs(manifest["losses"][0])
    print(f"loss step 1: expt {manifest['losses'][0]:.7f} peer {loss1.item():.7f} rel diff {d_loss1:.2e}")
    if d_loss1 > LOSS_TOL:
        failures.append("loss step 1")
    worst = max(((rel(model.params[p["name"]].grad.reshape(-1), grads1[p["offset"]:p["offset"] + p["size"]]),
                  p["name"]) for p in manifest["params"]))
    print(f"gradients step 1: largest diff / max|g| {worst[0]:.2e} ({worst[1]})")
    if worst[0] > GRAD_TOL:
        failures.append("gradients")

    clip = cfg["train"]["grad_clip"]
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(list(model.params.values()), clip)
    expt_peer.set_lr(optimizer, manifest["lr"][0])
    optimizer.step()
    # Compare the updates W1 - W0 as one vector: AdamW's first step is about lr sign(g), so a single
    # element with |g| near eps can differ by up to lr while everything else agrees to rounding.
    peer1 = torch.cat([model.params[p["name"]].detach().reshape(-1) for p in manifest["params"]])
    update_expt, update_peer = params1 - params0, peer1 - params0
    d_update = float((update_peer - update_expt).norm() / update_expt.norm())
    worst = max(((rel(model.params[p["name"]].detach().reshape(-1), params1[p["offset"]:p["offset"] + p["size"]]),
                  p["name"]) for p in manifest["params"]))
    print(f"update of step 1 ({cfg['optimizer']['type']}): |dW_peer - dW_expt| / |dW_expt| {d_update:.2e}; "
          f"largest element diff / max|w| {worst[0]:.2e} ({worst[1]})")
    if d_update > UPDATE_TOL:
        failures.append("update of step 1")

    with torch.no_grad():
        loss2 = model.forward(*batches[1]).item()
    d_loss2 = abs(loss2 - manifest["losses"][1]) / abs(manifest["losses"][1])
    print(f"loss step 2: expt {manifest['losses'][1]:.7f} peer {loss2:.7f} rel diff {d_loss2:.2e}")
    if d_loss2 > LOSS_TOL:
        failures.append("loss step 2")
    if failures:
        raise SystemExit("FAIL: " + ", ".join(failures))
    print("OK: same model, same first step")


if __name__ == "__main__":
    main()
