"""Compares two result.h5 files bit for bit: every metric of every row except wall-clock time.

Usage: compare_results.py A/result.h5 B/result.h5
Exit 0 when identical, 1 with a description of the first differences otherwise. The resume tests
use it both ways: an interrupted-and-resumed run must compare equal to an uninterrupted one, and a
resume that drops state (the negative control) must not.
"""
import sys

import h5py
import numpy as np

TIME_FIELDS = {"wall_s"}


def fail(msg):
    print("DIFFERENT: " + msg)
    sys.exit(1)


def compare_compound(name, a, b):
    if a.dtype != b.dtype:
        fail(f"{name}: dtypes differ {a.dtype} vs {b.dtype}")
    if a.shape != b.shape:
        fail(f"{name}: {a.shape[0]} rows vs {b.shape[0]} rows")
    for field in a.dtype.names:
        if field in TIME_FIELDS:
            continue
        x, y = a[field], b[field]
        if x.dtype.kind == "f":
            # Bit-level comparison: NaN payloads and signed zeros must match too.
            same = x.view(f"u{x.dtype.itemsize}") == y.view(f"u{y.dtype.itemsize}")
        else:
            same = x == y
        if not np.all(same):
            i = int(np.argmin(same))
            fail(f"{name}.{field}: first difference at row {i} (step {a['step'][i]}): {x[i]!r} vs {y[i]!r}")


def main(argv=None, quiet=False):
    argv = sys.argv[1:] if argv is None else argv
    fa, fb = h5py.File(argv[0], "r"), h5py.File(argv[1], "r")
    for ds in ("metrics/train", "metrics/eval"):
        compare_compound(ds, fa[ds][:], fb[ds][:])
    steps = fa["metrics/train"]["step"][:]
    if len(steps) and not np.all(np.diff(steps) == 1):
        fail("metrics/train steps are not consecutive (duplicated or missing steps)")
    prefix_a = sorted(fa["metrics/eval_prefix_acc"].keys()) if "metrics/eval_prefix_acc" in fa else []
    prefix_b = sorted(fb["metrics/eval_prefix_acc"].keys()) if "metrics/eval_prefix_acc" in fb else []
    if prefix_a != prefix_b:
        fail(f"prefix accuracy sets differ: {prefix_a} vs {prefix_b}")
    for k in prefix_a:
        x, y = fa["metrics/eval_prefix_acc"][k][:], fb["metrics/eval_prefix_acc"][k][:]
        if x.shape != y.shape or not np.array_equal(x.view(np.uint32), y.view(np.uint32)):
            fail(f"metrics/eval_prefix_acc/{k} differs")
    for key in ("status", "final_eval_loss", "best_eval_loss", "diverged_step", "tokens_seen", "steps_done"):
        va, vb = fa["summary"].attrs.get(key), fb["summary"].attrs.get(key)
        if va is None or vb is None:
            fail(f"summary attribute {key} missing")
        if isinstance(va, float) or isinstance(va, np.floating):
            if np.float64(va).view(np.uint64) != np.float64(vb).view(np.uint64):
                fail(f"summary.{key}: {va!r} vs {vb!r}")
        elif va != vb:
            fail(f"summary.{key}: {va!r} vs {vb!r}")
    if quiet:
        return
    print(f"IDENTICAL: {len(steps)} train rows, {fa['metrics/eval'].shape[0]} eval rows, "
          f"{len(prefix_a)} prefix-accuracy sets")


if __name__ == "__main__":
    main()
