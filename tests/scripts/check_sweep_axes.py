"""sweep.h5's typed axis columns read back with h5py, and through analysis/python/sweep_reader.py,
for the long-point fixture sweep of tests/analysis/analyze_test.cpp (muon, axes optimizer.lr,
optimizer.adam_patterns and train.batch_size, 8 trials; `expt analyze` already run).
    check_sweep_axes.py SWEEP_DIR LONG_PATTERN
"""
import json
import pathlib
import sys

import h5py
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "analysis" / "python"))
from sweep_reader import best_points, load_trials  # noqa: E402

sweep, long_a = pathlib.Path(sys.argv[1]), sys.argv[2]
with h5py.File(sweep / "sweep.h5", "r") as f:
    n = f["trials"].shape[0]
    assert n == 8, n
    assert "point" not in f["trials"].dtype.names  # the label lives in /point, whole
    keys = list(f["axis_keys"].asstr()[:])
    assert keys == ["optimizer.lr", "optimizer.adam_patterns", "train.batch_size"], keys
    lr = f["axes/optimizer.lr/value"]
    assert lr.dtype == np.float64, lr.dtype
    assert sorted(set(lr[:])) == [1e-3, 3e-3], lr[:]
    batch = f["axes/train.batch_size/value"]
    assert batch.dtype == np.int64, batch.dtype
    assert sorted(set(batch[:])) == [4, 8]
    patterns = f["axes/optimizer.adam_patterns/value"]
    assert h5py.check_string_dtype(patterns.dtype).length is None  # variable length
    values = list(patterns.asstr()[:])
    assert long_a in values and all(len(v) > 256 for v in values), [len(v) for v in values]
    for key in keys:
        present = f["axes"][key]["present"][:]
        assert present.dtype == np.uint8 and present.shape == (n,) and present.all(), (key, present)
    labels = list(f["point"].asstr()[:])
    assert all(len(p) > 256 for p in labels)
    assert f.attrs["config_schema"] >= 1

trials = load_trials(sweep)
assert trials["axis_optimizer.lr"].dtype == np.float64, trials["axis_optimizer.lr"].dtype
assert trials["axis_train.batch_size"].dtype == np.int64, trials["axis_train.batch_size"].dtype
assert set(trials["axis_optimizer.adam_patterns"]) == set(values)
for _, t in trials.iterrows():  # the label and the typed values agree
    assert t["point"] == (f"optimizer.lr={'1.0e-3' if t['axis_optimizer.lr'] == 1e-3 else '3.0e-3'} "
                          f"optimizer.adam_patterns={t['axis_optimizer.adam_patterns']} "
                          f"train.batch_size={t['axis_train.batch_size']}"), t["point"]

analysis = json.loads((sweep / "analysis" / "analysis.json").read_text())
cells = analysis["tables"]["cells"]
best = best_points(trials)
assert len(cells) == 1 and len(best) == 1
assert cells[0]["best_point"] == best.iloc[0]["point"], (cells[0]["best_point"], best.iloc[0]["point"])
row = trials[trials["point"] == best.iloc[0]["point"]].iloc[0]
assert row["axis_optimizer.adam_patterns"] == long_a and row["axis_optimizer.lr"] == 3e-3
assert row["axis_train.batch_size"] == 8
ablation = analysis["tables"]["ablation"]
assert [r["axis"] for r in ablation] == keys, ablation
assert analysis["config_schema"] == 1 and analysis["expt_commit"]
print(f"check_sweep_axes: {n} trials, typed columns and {len(ablation)} ablation rows agree")
