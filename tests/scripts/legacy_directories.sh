#!/bin/bash
# Trial and sweep directories written by the binary before decision 79 (tests/fixtures/legacy,
# trial ids = hash of the full canonical YAML) keep working with this one: a finished trial is not
# rerun, an interrupted one resumes from its checkpoint, and a stopped sweep resumes (its legacy
# trial folders renamed to the current ids) to the results of a fresh sweep of the same study.
# Losses are compared with a relative tolerance of 1e-6, not bit for bit: the fixtures' steps were
# computed by the previous binary, whose kernels may round differently (the bit-exact resume of
# one binary is resume_after_kill.sh's); a resume that drops the optimizer state must exceed it.
source "$(dirname "$0")/lib.sh"
fixtures="$EXPT_SOURCE_DIR/tests/fixtures/legacy"
cp -r "$fixtures/trial_finished" "$fixtures/trial_interrupted" "$fixtures/sweep" "$work/"
sets=(--set model.d_model=8 --set model.mixer.heads=2 --set model.mlp.intermediate_size=16 --set train.steps=12
      --set schedule.warmup=2 --set train.eval_every=6 --set train.eval_batches=1 --set train.checkpoint_every=4)
run() { "$EXPT" run "$EXPT_SOURCE_DIR/configs/quickstart.yaml" "${sets[@]}" --progress quiet --out "$@"; }

# Finished: nothing runs, nothing is written.
cp "$work/trial_finished/result.h5" "$work/finished_result.h5"
run "$work/trial_finished" > "$work/finished.out" 2>&1 || die "rerun of the finished trial failed: $(cat "$work/finished.out")"
grep -q "already finished" "$work/finished.out" || die "the finished trial was not recognised: $(cat "$work/finished.out")"
cmp -s "$work/trial_finished/result.h5" "$work/finished_result.h5" || die "the finished trial's result.h5 changed"
[[ $(grep -c '"event":"start"' "$work/trial_finished/attempts.jsonl") == 1 ]] || die "the finished trial was started again"

# Losses of result.h5 B against A: the same train and eval steps, every loss within 1e-6
# relative, and the rows up to step $3 (kept from the legacy attempt) bit for bit.
close() {
  "$EXPT_PYTHON" - "$@" << 'PY'
import sys
import h5py, numpy as np
a, b, kept = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), int(sys.argv[3])
for stream in ("train", "eval"):
    x, y = a["metrics/" + stream][:], b["metrics/" + stream][:]
    col = "loss" if stream == "train" else [n for n in x.dtype.names if n.startswith("loss@")][0]
    assert np.array_equal(x["step"], y["step"]), (stream, x["step"], y["step"])
    old = x["step"] <= kept
    assert np.array_equal(x[col][old].view(np.uint32), y[col][old].view(np.uint32)), (stream, "kept rows differ")
    rel = np.max(np.abs(x[col].astype(float) - y[col]) / np.abs(x[col]))
    if rel > 1e-6:
        print(f"{stream} {col}: max relative difference {rel:.3g}"); sys.exit(1)
PY
}
# Interrupted (FAILED at step 7, checkpoint 4): resumes from step 4 and ends where the
# uninterrupted run of the same config by the previous binary did.
cp -r "$work/trial_interrupted" "$work/dropped"
run "$work/trial_interrupted" > "$work/interrupted.out" 2>&1 || die "resume failed: $(cat "$work/interrupted.out")"
grep -q "attempt 2: resuming from step 4" "$work/trial_interrupted/log.txt" || die "did not resume from step 4"
close "$fixtures/trial_finished/result.h5" "$work/trial_interrupted/result.h5" 4 \
  || die "the resumed legacy trial differs from the uninterrupted one"
# Negative control: the same resume without the optimizer state must fail the comparison.
EXPT_TEST_DROP_RESUME_STATE=optimizer run "$work/dropped" > "$work/dropped.out" 2>&1 || die "dropped resume failed"
close "$fixtures/trial_finished/result.h5" "$work/dropped/result.h5" 4 \
  && die "a resume without optimizer state passed the comparison: it proves nothing"
# Another config is still refused in a legacy directory.
run "$work/trial_interrupted" --set seed=2 > "$work/other.out" 2>&1 && die "a legacy directory accepted another config"
grep -q "already holds trial" "$work/other.out" || die "unexpected refusal: $(cat "$work/other.out")"

# Its sweep.h5 (one 256-byte point text, no typed axes) is refused by both readers, saying how to
# rewrite it, until the sweep is resumed.
cp -r "$fixtures/sweep" "$work/old_index"
"$EXPT" analyze "$work/old_index" > "$work/old_index.out" 2>&1 && die "analyze read an old sweep.h5"
grep -q "written by an older expt.*run the sweep's .expt sweep. command again" "$work/old_index.out" \
  || die "unexpected analyze message: $(cat "$work/old_index.out")"
"$EXPT_PYTHON" -c "
import sys; sys.path.insert(0, '$EXPT_SOURCE_DIR/analysis/python')
from sweep_reader import load_trials
try:
    load_trials('$work/old_index')
except ValueError as e:
    assert 'older expt' in str(e), e
else:
    sys.exit('load_trials read an old sweep.h5')" || die "the Python reader accepted an old sweep.h5"

# The sweep: two finished trials, one interrupted at its checkpoint, one never started.
legacy_ids=$(ls "$work/sweep/trials")
"$EXPT" sweep "$fixtures/study.yaml" --out "$work/sweep" > "$work/sweep.out" 2>&1 || die "sweep resume failed: $(cat "$work/sweep.out")"
[[ $(grep -c "legacy id" "$work/sweep.out") == 3 ]] || die "expected 3 legacy folders renamed: $(cat "$work/sweep.out")"
"$EXPT_PYTHON" - "$work/sweep" "$fixtures/sweep" $legacy_ids << 'PY' || die "resumed sweep"
import json, pathlib, sys
import h5py
new, old, legacy = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
status = json.loads((new / "status.json").read_text())
assert status["counts"]["COMPLETED"] == 4, status["counts"]
old_status = {t["id"]: t for t in json.loads((old / "status.json").read_text())["trials"]}
by_legacy = {}
for d in (new / "trials").iterdir():
    first = (d / "trial.yaml").read_text().splitlines()[0]
    if not first.startswith("# trial "):  # a legacy trial.yaml, kept as written
        by_legacy[[i for i in legacy if (old / "trials" / i / "trial.yaml").read_text() == (d / "trial.yaml").read_text()][0]] = d
assert sorted(by_legacy) == sorted(legacy), (sorted(by_legacy), legacy)
with h5py.File(new / "sweep.h5", "r") as f:
    ids = [t.decode() for t in f["trials"]["trial_id"]]
for old_id, d in by_legacy.items():
    assert d.name in ids and old_id not in ids, (old_id, d.name)
    starts = (d / "attempts.jsonl").read_text().count('"event":"start"')
    if old_status[old_id]["state"] == "COMPLETED":
        assert starts == 1, f"finished trial {old_id} was rerun"
        assert (d / "result.h5").read_bytes() == (old / "trials" / old_id / "result.h5").read_bytes()
    else:
        assert starts == 2, (old_id, starts)
        assert "attempt 2: resuming from step 4" in (d / "log.txt").read_text(), f"{old_id} did not resume"
print("legacy sweep resumed:", {o: d.name for o, d in by_legacy.items()})
PY
# The same trials, points and losses as a fresh sweep of the study by this binary.
"$EXPT" sweep "$fixtures/study.yaml" --out "$work/fresh" > "$work/fresh.out" 2>&1 || die "fresh sweep failed"
"$EXPT_PYTHON" - "$work/fresh" "$work/sweep" << 'PY' || die "resumed legacy sweep differs from a fresh one"
import pathlib, sys
import h5py, numpy as np
a, b = (h5py.File(pathlib.Path(d) / "sweep.h5", "r") for d in sys.argv[1:3])
for field in ("trial_id", "status", "steps", "tokens"):
    assert np.array_equal(a["trials"][field], b["trials"][field]), field
assert list(a["point"].asstr()[:]) == list(b["point"].asstr()[:])
for key in a["axis_keys"].asstr()[:]:
    assert np.array_equal(a["axes"][key]["value"][:], b["axes"][key]["value"][:]), key
rel = np.abs(a["trials"]["final_eval_loss"] - b["trials"]["final_eval_loss"]) / a["trials"]["final_eval_loss"]
assert rel.max() < 1e-6, rel
PY
for id in $(ls "$work/fresh/trials"); do
  close "$work/fresh/trials/$id/result.h5" "$work/sweep/trials/$id/result.h5" 0 || die "trial $id differs from a fresh one"
done
"$EXPT" analyze "$work/sweep" > "$work/analyze.out" 2>&1 || die "analyze of the resumed sweep failed"
echo "legacy_directories: finished trial kept, interrupted trial resumed, legacy sweep resumed to a fresh sweep's results"
