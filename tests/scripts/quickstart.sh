#!/usr/bin/env bash
# ctest-labels: slow
# README command 1 end to end, shortened: the quickstart study (scripts/quickstart_study.sh: sweep on
# 2 training ranks, `expt analyze`, plots) at tokens_per_param 0.5 instead of 2, ending with the
# analysis table and the plot paths; the confirmation seeds (search.confirm) give every best loss and
# speedup an interval over seeds; the Python reader agrees with `expt analyze` on it
# (check_sweep_reader.py). Also the single quickstart trial (configs/quickstart.yaml) still learns.
source "$(dirname "$0")/lib.sh"

"$EXPT" run "$EXPT_SOURCE_DIR/configs/quickstart.yaml" --progress plain --out "$work/qs" > "$work/out.txt" 2>&1 \
  || die "quickstart run failed: $(tail -20 "$work/out.txt")"
"$EXPT_PYTHON" "$scripts/read_result.py" "$work/qs/result.h5" || die "result.h5 did not read back in Python"
"$EXPT_PYTHON" - "$work/qs/result.h5" <<'PY' || die "quickstart did not learn"
import math, sys, h5py
f = h5py.File(sys.argv[1], "r")
s = f["summary"].attrs
chance = math.log(5)
final = float(s["final_eval_loss"])
ev = f["metrics/eval"][:]
acc = float(ev["token_acc@16"][-1])
print(f"quickstart: final eval loss {final:.4f} (chance {chance:.4f}), token accuracy {acc:.3f}")
assert s["status"] in (b"COMPLETED", "COMPLETED"), s["status"]
assert final < 0.5 * chance, "loss not clearly below chance"
PY

study="$work/study"
bash "$EXPT_SOURCE_DIR/scripts/quickstart_study.sh" "$EXPT" "$study" --set scales.tokens_per_param=0.5 \
  --set base.train.eval_every=20 --set base.train.checkpoint_every=20 > "$work/study.out" 2> "$work/study.err" \
  || die "quickstart study failed: $(tail -30 "$work/study.err")"
grep -q "32 COMPLETED" "$work/study.err" "$work/study.out" || die "not every trial completed: $(tail "$work/study.err")"
grep -q "^Speedup over adamw" "$work/study.out" || die "no speedup table: $(cat "$work/study.out")"
for plot in loss_curves final_loss speedup lr_sensitivity; do
  for ext in png svg; do
    f="$study/analysis/plots/$plot.$ext"
    grep -qx "  $f" "$work/study.out" || die "plot path $f not printed"
    [[ -s $f ]] || die "plot $f missing or empty"
  done
done
# The printed analysis (from its first line to the blank line before "plots:") is analysis.txt.
awk '/^study quickstart_study \(/ {on = 1} /^plots:$/ {on = 0} on' "$work/study.out" | sed '$d' > "$work/printed.txt"
cmp -s "$work/printed.txt" "$study/analysis/analysis.txt" || die "printed table differs from analysis.txt"
[[ -s $work/printed.txt ]] || die "no analysis printed"
# search.confirm ran each cell's best point on seeds 1-3: every best loss and speedup has an
# interval over seeds of positive width, none reads n/a.
"$EXPT_PYTHON" - "$study" <<'PY' || die "the confirmation seeds did not give intervals over seeds"
import json, pathlib, sys
a = json.loads((pathlib.Path(sys.argv[1]) / "analysis" / "analysis.json").read_text())
for c in a["tables"]["cells"]:
    assert c["seeds"] == 3 and c["ranked_seeds"] == 3 and c["seed_sd"] > 0, c
    assert c["ci_method"] == "seeds" and c["ci_low"] < c["ci_high"], c
for r in a["tables"]["speedup"]:
    assert r["ci_method"] == "seeds" and r["ci_low"] < r["ci_high"], r
PY
cp -r "$study" "$work/copy"
"$EXPT_PYTHON" "$scripts/check_sweep_reader.py" "$study" "$work/copy" || die "Python reader disagrees with expt analyze"
echo "quickstart: ok"
