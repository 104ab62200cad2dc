#!/usr/bin/env bash
# Faults inside a sweep (docs/reliability.md): a trial is fed NaN (DIVERGED, loss +inf, ranked
# last, both ranks of its 2-rank group agree), a rank stalls inside a collective (the watchdog
# aborts the job, the rerun resumes and equals a clean sweep), a trial throws (FAILED with its message in log.txt,
# status.json and the summary), a second sweep on a directory in use is refused, and a sweep whose
# files cannot grow (RLIMIT_FSIZE, i.e. a full disk) fails with a clear error while the results
# written before stay intact and readable. In every case the other trials go on.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# Two trials that differ in length: the fault step (8) is reached by the 12-step trial only.
cat > "$work/study.yaml" <<'YAML'
study: faults
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.1}
  schedule: {type: cosine, warmup: 2}
  train: {batch_size: 8, eval_every: 5, eval_batches: 1, checkpoint_every: 5}
search:
  strategy: grid
  seeds: [1]
  space:
    train.steps: [6, 12]
sweep: {ranks_per_trial: 2, max_attempts: 2}
YAML
study=$work/study.yaml
one=(--set sweep.ranks_per_trial=1)
faults=0

# ---- NaN at step 8 in a 2-rank trial (injected on rank 0 only) ----
wd=(--set sweep.collective_timeout_s=3)
mpirun -np 3 "$EXPT" sweep "$study" "${wd[@]}" --out "$work/clean2" > "$work/clean2.out" 2>&1 \
  || die "clean 2-rank sweep failed: $(cat "$work/clean2.out")"
EXPT_TEST_NAN_AT_STEP=8 mpirun -np 3 "$EXPT" sweep "$study" --out "$work/nan" > "$work/nan.out" 2>&1 \
  || die "a sweep with a diverging trial must exit 0: $(cat "$work/nan.out")"
faults=$((faults + 1))
"$EXPT_PYTHON" - "$work" <<'PY' || die "divergence not classified"
import json, pathlib, sys
import h5py, numpy as np
w = pathlib.Path(sys.argv[1])
s = json.load(open(w / "nan" / "status.json"))
assert s["counts"]["DIVERGED"] == 1 and s["counts"]["COMPLETED"] == 1, s["counts"]
for t in s["trials"]:
    with h5py.File(w / "nan" / "trials" / t["id"] / "result.h5", "r") as f:
        summ = f["summary"].attrs
        if t["steps"] == 12:
            assert t["state"] == "DIVERGED" and t["loss"] is None, t
            assert summ["status"] == b"DIVERGED" and summ["diverged_step"] == 8, dict(summ)
            assert np.isposinf(summ["final_eval_loss"]), summ["final_eval_loss"]
            train = f["metrics/train"][:]
            assert train["step"][-1] == 8 and train["nonfinite"][-1] == 1 and np.isnan(train["loss"][-1]), train[-1]
            assert (train["nonfinite"][:-1] == 0).all()
            assert b"nan" in f["events"]["kind"]
        else:
            assert t["state"] == "COMPLETED", t
with h5py.File(w / "nan" / "sweep.h5", "r") as f:
    rows = f["trials"][:]
order = np.argsort(rows["final_eval_loss"], kind="stable")
assert rows["status"][order[-1]] == b"DIVERGED" and np.isposinf(rows["final_eval_loss"][order[-1]]), rows
PY
# Both ranks agreed: the group stopped the diverged trial at the same step (else the next trial's
# collectives would mismatch) and trained the next trial exactly as in a clean sweep.
short_id=$("$EXPT_PYTHON" -c "
import json, sys; print([t['id'] for t in json.load(open(sys.argv[1]))['trials'] if t['steps'] == 6][0])" "$work/nan/status.json")
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/clean2/trials/$short_id/result.h5" "$work/nan/trials/$short_id/result.h5" \
  || die "the trial after the diverged one differs from a clean sweep's"

# ---- Watchdog: group rank 1 stalls inside its 40th collective (about step 11 of the first trial);
# the job must abort with a message naming the rank and the trial, and the rerun resumes. ----
set +e
EXPT_TEST_STALL_COLLECTIVE=1:40 timeout 300 mpirun -np 3 "$EXPT" sweep "$study" "${wd[@]}" --out "$work/stall" \
  > "$work/stall.out" 2>&1
rc=$?
set -e
faults=$((faults + 1))
[[ $rc -eq 124 ]] || die "a stuck collective must abort the job with exit code 124, got $rc: $(cat "$work/stall.out")"
grep -q "expt: watchdog: rank [01] of trial [0-9a-f]* (world rank [12]) inside .*: no progress for" "$work/stall.out" \
  || die "no watchdog message naming the rank and trial: $(cat "$work/stall.out")"
mpirun -np 3 "$EXPT" sweep "$study" "${wd[@]}" --out "$work/stall" > "$work/stall2.out" 2>&1 \
  || die "rerun after the watchdog abort failed: $(cat "$work/stall2.out")"
grep -h '"event":"start"' "$work"/stall/trials/*/attempts.jsonl | grep -qv '"from_step":0' \
  || die "the rerun did not resume from a checkpoint"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/clean2" "$work/stall" || die "resumed after the watchdog: results differ"

# ---- An exception at step 8: FAILED after max_attempts, message everywhere, others go on ----
set +e
EXPT_TEST_THROW_AT_STEP=8 "$EXPT" sweep "$study" "${one[@]}" --out "$work/throw" > "$work/throw.out" 2>&1
rc=$?
set -e
faults=$((faults + 2))  # two attempts
[[ $rc -eq 1 ]] || die "a sweep with a failed trial must exit 1, got $rc"
grep -q "failed trials:" "$work/throw.out" || die "summary lists no failure: $(cat "$work/throw.out")"
grep -q "after 2 attempt(s): injected failure at step 8" "$work/throw.out" || die "summary lacks the message"
grep -q "1 COMPLETED 1 FAILED" "$work/throw.out" || die "the other trial did not go on"
"$EXPT_PYTHON" - "$work/throw" <<'PY' || die "failure not visible in status.json / log.txt"
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
t = [t for t in json.load(open(d / "status.json"))["trials"] if t["state"] == "FAILED"]
assert len(t) == 1 and t[0]["message"] == "injected failure at step 8" and t[0]["attempts"] == 2, t
log = (d / "trials" / t[0]["id"] / "log.txt").read_text()
assert log.count("FAILED at step 8: injected failure at step 8") == 2, log
PY

# ---- Two sweeps on one directory: the second is refused, the first is undisturbed ----
EXPT_TEST_STEP_DELAY_MS=300 "$EXPT" sweep "$study" "${one[@]}" --out "$work/lock" > "$work/lock1.out" 2>&1 &
first=$!
wait_for_file "$work/lock/status.json" 120
set +e
mpirun -np 3 "$EXPT" sweep "$study" --out "$work/lock" > "$work/lock3.out" 2>&1
rc_mpi=$?
"$EXPT" sweep "$study" "${one[@]}" --out "$work/lock" > "$work/lock2.out" 2>&1
rc_local=$?
kill -0 "$first" 2> /dev/null || die "the first sweep ended before the second ones were tried; the test proves nothing"
wait "$first"
rc_first=$?
set -e
faults=$((faults + 2))
[[ $rc_local -ne 0 && $rc_mpi -ne 0 ]] || die "a second sweep on a directory in use was not refused ($rc_local, $rc_mpi)"
for f in lock2 lock3; do
  grep -q "is in use by another \`expt sweep\` (lock .*\.sweep\.lock is held)" "$work/$f.out" \
    || die "$f: no clear message: $(cat "$work/$f.out")"
done
[[ $rc_first -eq 0 ]] || die "the first sweep was disturbed: $(cat "$work/lock1.out")"

# ---- Files cannot grow past 100 KiB (RLIMIT_FSIZE; SIGXFSZ ignored so writes fail with EFBIG) ----
"$EXPT" sweep "$study" "${one[@]}" --set 'search.seeds=[1, 2]' --set sweep.max_attempts=3 --out "$work/ref" > /dev/null 2>&1 || die "reference failed"
"$EXPT" sweep "$study" "${one[@]}" --out "$work/full" > /dev/null 2>&1 || die "first half failed"
(cd "$work/full" && sha256sum sweep.h5 trials/*/result.h5 > "$work/before.sha")
set +e
(
  trap '' XFSZ
  ulimit -f 100
  exec "$EXPT" sweep "$study" "${one[@]}" --set 'search.seeds=[1, 2]' --out "$work/full"
) > "$work/full.out" 2>&1
rc=$?
set -e
faults=$((faults + 1))
[[ $rc -eq 1 ]] || die "a sweep that cannot write must exit 1 (failed trials), got $rc: $(tail -5 "$work/full.out")"
grep -q "FAILED (adamw seed 2 .*: File too large" "$work/full.out" || die "no clear error: $(tail -5 "$work/full.out")"
(cd "$work/full" && sha256sum --quiet -c <(grep result.h5 "$work/before.sha")) || die "earlier results were changed"
"$EXPT_PYTHON" - "$work/full" <<'PY' || die "earlier results are not readable"
import pathlib, sys
import h5py
d = pathlib.Path(sys.argv[1])
with h5py.File(d / "sweep.h5", "r") as f:
    rows = {r["trial_id"].decode(): r["status"].decode() for r in f["trials"][:]}
done = [i for i, s in rows.items() if s == "COMPLETED"]
assert len(done) == 2, rows
for i in done:
    with h5py.File(d / "trials" / i / "result.h5", "r") as f:
        assert f["summary"].attrs["status"] == b"COMPLETED" and len(f["metrics/train"]) > 0
PY
[[ -z $(find "$work/full" -name '*.tmp') ]] || die "temporary files left behind"
# With space again, allowing more attempts finishes the sweep, equal to an undisturbed one.
"$EXPT" sweep "$study" "${one[@]}" --set 'search.seeds=[1, 2]' --set sweep.max_attempts=3 --out "$work/full" \
  > "$work/full2.out" 2>&1 || die "rerun after the disk-full failure failed: $(cat "$work/full2.out")"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref" "$work/full" || die "results after the disk-full failure differ"
echo "sweep_faults: faults injected: $faults (NaN in a 2-rank trial, a stuck collective, 2 exceptions, 2 refused second sweeps," \
  "file-size limit), other trials went on, data lost: 0"
