"""Compares two checkpoint state.h5 files bit for bit: every dataset (parameters, optimizer state,
trainer and observer state) except the wall-clock time trainer/wall_s.

Usage: compare_states.py A/state.h5 B/state.h5
Exit 0 when identical, 1 naming the first difference otherwise.
"""
import sys

import h5py
import numpy as np

TIME_KEYS = {"trainer/wall_s"}


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def same_bits(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind == "f":  # NaN payloads and signed zeros must match too
        return np.array_equal(x.view(f"u{x.dtype.itemsize}"), y.view(f"u{y.dtype.itemsize}"))
    return np.array_equal(x, y)


def main():
    a, b = (datasets(h5py.File(p, "r")) for p in sys.argv[1:3])
    if a.keys() != b.keys():
        print(f"DIFFERENT: keys {sorted(a.keys() ^ b.keys())} in one state only")
        sys.exit(1)
    for key in sorted(a):
        if key not in TIME_KEYS and not same_bits(a[key], b[key]):
            print(f"DIFFERENT: {key}")
            sys.exit(1)
    print(f"IDENTICAL: {len(a)} datasets ({np.asarray(a['params']).size} parameters)")


if __name__ == "__main__":
    main()
