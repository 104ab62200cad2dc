#!/usr/bin/env bash
# Sweeps under a real mpirun: at 3 ranks (a coordinator and 2 groups of 1) no trial is handed out
# twice and the set of trials equals the one-rank sweep's; rerunning the same command resumes by
# skipping finished trials; one run over TCP only (`--mca btl self,tcp`) stands in for several hosts.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1


study="$EXPT_SOURCE_DIR/configs/sweep_small.yaml"
short=(--set base.train.steps=20 --set base.train.eval_every=10 --set base.train.checkpoint_every=10)

"$EXPT" sweep "$study" "${short[@]}" --out "$work/one" > "$work/one.out" 2>&1 || die "1-rank sweep failed: $(cat "$work/one.out")"
mpirun -np 3 "$EXPT" sweep "$study" "${short[@]}" --out "$work/three" > "$work/three.out" 2>&1 \
  || die "3-rank sweep failed: $(cat "$work/three.out")"
mpirun -np 3 "$EXPT" sweep "$study" "${short[@]}" --out "$work/three" > "$work/rerun.out" 2>&1 \
  || die "3-rank rerun failed: $(cat "$work/rerun.out")"
mpirun -np 3 --mca btl self,tcp "$EXPT" sweep "$study" "${short[@]}" --out "$work/tcp" > "$work/tcp.out" 2>&1 \
  || die "TCP-only sweep failed: $(cat "$work/tcp.out")"
for ranks in 2 4; do  # one group; three groups
  mpirun -np $ranks "$EXPT" sweep "$study" "${short[@]}" --out "$work/np$ranks" > "$work/np$ranks.out" 2>&1 \
    || die "$ranks-rank sweep failed: $(cat "$work/np$ranks.out")"
done
# Data-parallel trials inside a sweep: 2 groups of 2 ranks.
mpirun -np 5 "$EXPT" sweep "$study" "${short[@]}" --set sweep.ranks_per_trial=2 --out "$work/dp" > "$work/dp.out" 2>&1 \
  || die "data-parallel sweep failed: $(cat "$work/dp.out")"
"$EXPT" status "$work/three" > "$work/status.out" 2>&1 || die "expt status failed: $(cat "$work/status.out")"
grep -q "12 COMPLETED" "$work/status.out" || die "status table: $(cat "$work/status.out")"

"$EXPT_PYTHON" - "$work" <<'PY' || die "sweep results differ"
import json, re, sys, collections, pathlib
w = pathlib.Path(sys.argv[1])
def ids(d):
    s = json.load(open(w / d / "status.json"))
    assert s["counts"]["COMPLETED"] == len(s["trials"]) == 12, s["counts"]
    return {t["id"]: t for t in s["trials"]}
one, three, tcp = ids("one"), ids("three"), ids("tcp")
assert set(one) == set(three) == set(tcp), (sorted(one), sorted(three), sorted(tcp))
# Handout: every trial started exactly once in the first 3-rank run, never in the rerun.
starts = collections.Counter(re.findall(r"\[sweep\] start (\w+)", open(w / "three.out").read()))
assert set(starts) == set(three) and set(starts.values()) == {1}, starts
assert not re.findall(r"\[sweep\] start", open(w / "rerun.out").read()), "rerun started trials again"
assert all(t["attempts"] == 1 for t in three.values())
# Same config and seed, same final loss whichever rank ran it.
for i in one:
    assert one[i]["loss"] == three[i]["loss"] == tcp[i]["loss"], (i, one[i]["loss"], three[i]["loss"], tcp[i]["loss"])
import h5py
with h5py.File(w / "three" / "sweep.h5", "r") as f:
    assert len(f["trials"]) == 12
    for i in three:
        assert f["trial_files"][i]["summary"].attrs["status"] in (b"COMPLETED", "COMPLETED")
for d in ("np2", "np4"):
    other = ids(d)
    assert set(other) == set(one), (d, sorted(other))
    starts = collections.Counter(re.findall(r"\[sweep\] start (\w+)", open(w / f"{d}.out").read()))
    assert set(starts) == set(other) and set(starts.values()) == {1}, (d, starts)
    for i in one:
        assert one[i]["loss"] == other[i]["loss"], (d, i, one[i]["loss"], other[i]["loss"])
# 2-rank trials are other trials (train.ranks is part of the config): same points, each run once,
# final losses equal to the 1-rank trials' up to float summation order.
dp = ids("dp")
starts = collections.Counter(re.findall(r"\[sweep\] start (\w+)", open(w / "dp.out").read()))
assert set(starts) == set(dp) and set(starts.values()) == {1}, starts
key = lambda t: (t["cell"], t["seed"], t["point"])
by_point = {key(t): t for t in one.values()}
assert set(by_point) == {key(t) for t in dp.values()}
for t in dp.values():
    ref = by_point[key(t)]["loss"]
    assert abs(t["loss"] - ref) <= 1e-3 * abs(ref), (key(t), t["loss"], ref)
print("sweep_mpi: 12 trials, same set at 1, 2, 3 and 4 ranks and over TCP, each handed out once, rerun "
      "skipped all; 2-rank data-parallel trials match the 1-rank losses")
PY
echo "sweep_mpi: ok"
