#!/usr/bin/env bash
# The README's quickstart config trains end to end, brings the loss clearly below chance, and its
# result.h5 reads back in Python (h5py) into numpy structured arrays.
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
