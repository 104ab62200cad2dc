"""Compares two sweep directories bit for bit: sweep.h5 and every trial's result.h5.

Usage: compare_sweeps.py REF_DIR OTHER_DIR
Exit 0 when identical, 1 with the first difference otherwise.

sweep.h5 /trials: the same trial ids in the same order, every field equal bit for bit except
n_attempts (an interrupted sweep needs more attempts; it must be >= 1 and every trial finished).
/point, /axis_keys, /axes and /config equal. Each trial's result.h5: compare_results.py's rules (every metric of every row but
wall-clock time, consecutive train steps, the summary), so no step is duplicated, missing or
different, and no trial is lost.
"""
import pathlib
import sys

import h5py
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare_results  # noqa: E402

# n_attempts counts launches, which a killed-and-rerun sweep has more of by design; every other
# field (losses, steps, tokens, status) must match bit for bit.
SKIP_FIELDS = {"n_attempts"}


def fail(msg):
    print("DIFFERENT: " + msg)
    sys.exit(1)


def bits(column):
    return column.view(f"u{column.dtype.itemsize}") if column.dtype.kind == "f" else column


def main():
    ref, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    with h5py.File(ref / "sweep.h5", "r") as fa, h5py.File(other / "sweep.h5", "r") as fb:
        a, b = fa["trials"][:], fb["trials"][:]
        if a.dtype != b.dtype:
            fail(f"sweep.h5 /trials dtypes differ: {a.dtype} vs {b.dtype}")
        if a.shape != b.shape:
            fail(f"sweep.h5 /trials: {a.shape[0]} trials vs {b.shape[0]}")
        for field in a.dtype.names:
            if field in SKIP_FIELDS:
                continue
            same = bits(a[field]) == bits(b[field])
            if not np.all(same):
                i = int(np.argmin(same))
                fail(f"sweep.h5 /trials.{field} row {i}: {a[field][i]!r} vs {b[field][i]!r}")
        if np.any(b["n_attempts"] < 1):
            fail("a trial of the other sweep was never attempted")
        if list(fa["point"].asstr()[:]) != list(fb["point"].asstr()[:]):
            fail("sweep.h5 /point differs")
        if list(fa["axis_keys"].asstr()[:]) != list(fb["axis_keys"].asstr()[:]):
            fail("sweep.h5 /axis_keys differs")
        for key in fa["axis_keys"].asstr()[:]:
            for part in ("value", "present"):
                x, y = fa["axes"][key][part], fb["axes"][key][part]
                x, y = (x.asstr()[:], y.asstr()[:]) if h5py.check_string_dtype(x.dtype) else (bits(x[:]), bits(y[:]))
                if x.dtype != y.dtype or not np.array_equal(x, y):
                    fail(f"sweep.h5 /axes/{key}/{part} differs")
        if fa["config"][()] != fb["config"][()]:
            fail("sweep.h5 /config differs")
        if sorted(fa["trial_files"].keys()) != sorted(fb["trial_files"].keys()):
            fail("sweep.h5 /trial_files lists other trials")
        ids = [t.decode() for t in a["trial_id"]]
        statuses = {s.decode() for s in a["status"]}
    for trial in ids:
        ra, rb = ref / "trials" / trial / "result.h5", other / "trials" / trial / "result.h5"
        if not rb.exists():
            fail(f"trial {trial} has no result.h5 (lost trial)")
        try:
            compare_results.main([str(ra), str(rb)], quiet=True)
        except SystemExit as e:
            if e.code:
                fail(f"trial {trial}: result.h5 differs (see above)")
    print(f"IDENTICAL: {len(ids)} trials ({', '.join(sorted(statuses))}), sweep.h5 and every result.h5")


if __name__ == "__main__":
    main()
