"""Compares trials that were killed and resumed with uninterrupted ones, bit for bit: every metric
row (compare_results.py's rules) and every dataset of the final checkpoint (parameters, optimizer
state, trainer counters), except the recorded training wall time.

Usage: compare_states.py REF_DIR RUN_DIR [REF_DIR RUN_DIR ...]
Each REF_DIR/RUN_DIR is a finished trial directory; the final checkpoint is
checkpoints/step-<steps>/state.h5 with its COMMIT (decision 111: a completed trial that
checkpoints keeps it). Prints one line per pair (IDENTICAL or DIFFERENT with what differs) and
exits 1 when any pair differs or lacks its final checkpoint.
"""
import contextlib
import io
import pathlib
import sys

import h5py
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compare_results  # noqa: E402

# Wall time differs between any two runs; everything else in a checkpoint must not.
TIME_DATASETS = {"trainer/wall_s"}


def datasets(f):
    found = {}
    f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def same_bits(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.kind == "f":
        # NaN payloads and signed zeros must match too.
        return bool(np.array_equal(x.view(f"u{x.dtype.itemsize}"), y.view(f"u{y.dtype.itemsize}")))
    return bool(np.array_equal(x, y))


def final_state(trial_dir):
    with h5py.File(trial_dir / "result.h5", "r") as r:
        steps = int(r["scale"].attrs["steps"])
    folder = trial_dir / "checkpoints" / f"step-{steps}"
    commit = folder / "COMMIT"
    if not commit.is_file() or commit.read_text() != f"{steps}\n":
        raise FileNotFoundError(f"{folder} has no COMMIT naming step {steps}: no final checkpoint was kept")
    with h5py.File(folder / "state.h5", "r") as f:
        return datasets(f)


def compare_pair(ref, run):
    """Returns a list of differences (empty when identical) and a description of what was compared."""
    problems = []
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            compare_results.main([str(ref / "result.h5"), str(run / "result.h5")], quiet=True)
    except SystemExit as e:  # compare_results said what the first metric difference is
        if e.code:
            problems.append("metrics: " + said.getvalue().strip().removeprefix("DIFFERENT: "))
    except OSError as e:
        problems.append(f"metrics: {e}")
    try:
        a, b = final_state(ref), final_state(run)
    except (OSError, KeyError) as e:
        return problems + [f"final checkpoint: {e}"], ""
    if set(a) != set(b):
        problems.append(f"final state: datasets only in one: {sorted(set(a) ^ set(b))}")
    # The parameters first: they are what a reader of the line looks for.
    differing = sorted((k for k in set(a) & set(b) if k not in TIME_DATASETS and not same_bits(a[k], b[k])),
                       key=lambda k: (k != "params", k))
    if differing:
        shown = ", ".join(differing[:8]) + (", ..." if len(differing) > 8 else "")
        problems.append(f"final state: {len(differing)} of {len(a)} datasets differ: {shown}")
    n_params = np.asarray(a["params"]).size if "params" in a else 0
    return problems, f"{len(a) - len(TIME_DATASETS & set(a))} state datasets ({n_params} parameters)"


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit(__doc__)
    failures = 0
    for ref, run in zip(argv[0::2], argv[1::2]):
        ref, run = pathlib.Path(ref), pathlib.Path(run)
        problems, compared = compare_pair(ref, run)
        if problems:
            failures += 1
            print(f"DIFFERENT {run}: " + "; ".join(problems))
        else:
            print(f"IDENTICAL {run}: every metric row and {compared}, bit for bit")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
