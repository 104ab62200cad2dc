#!/usr/bin/env bash
# ctest-labels: slow
# bench/peer/compare.py end to end at a tiny size: expt bench and the PyTorch peer alternated, the
# JSON record parses and its figures are consistent (ratio = expt / peer tokens/s; both sides' BLAS
# time within their step, the peer's from torch.profiler; expt's optimizer share at the model's
# BLAS rate within (0, 1) for Muon; the ratio's ceilings from expt's products alone; the peer on the
# fastest correct OpenBLAS core of expt's sgemm probes). Skipped (exit 77) when python3-torch is not installed.
source "$(dirname "$0")/lib.sh"
"$EXPT_PYTHON" -c "import torch" 2> /dev/null || { echo "python3-torch not installed: skipped"; exit 77; }
"$EXPT_PYTHON" "$EXPT_SOURCE_DIR/bench/peer/compare.py" --expt "$EXPT" --mixers gla --optimizers muon --d-models 32 \
  --set model.n_layers=1 --set task.seq_len=32 --set train.batch_size=2 --set model.mlp.intermediate_size=64 \
  --repeats 1 --steps 2 --warmup 1 --json "$work/compare.json" > "$work/compare.txt" 2>&1 \
  || die "compare.py failed: $(cat "$work/compare.txt")"
grep -q "| gla | muon | 32 |" "$work/compare.txt" || die "no table row: $(cat "$work/compare.txt")"
"$EXPT_PYTHON" - "$work/compare.json" "$work/compare.txt" <<'PY' || die "bad compare.py record"
import json, sys
rec = json.load(open(sys.argv[1]))
(case,) = rec["cases"]
e, p = case["expt_runs"][0], case["peer_runs"][0]
assert abs(case["ratio"] - e["tokens_per_s"] / p["tokens_per_s"]) < 1e-9, case["ratio"]
assert e["n_params"] == p["n_params"], (e["n_params"], p["n_params"])
assert 0 < case["expt_blas_s"] <= e["step_s"] and abs(case["expt_outside_blas_s"] - (e["step_s"] - e["blas"]["s"])) < 1e-12
assert 0 < p["blas"]["s"] and p["blas"]["calls"] > 0 and "aten::mm" in p["blas"]["ops"], p["blas"]
assert abs(case["peer_outside_blas_s"] - (p["step_s"] - p["blas"]["s"])) < 1e-12
# The ratio's ceilings: the peer's step over expt's products alone, at their rate and at the limit;
# the products at the measured rate cannot beat them at the limit, and both bound the ratio.
assert abs(case["ratio_ceiling_outside_blas_zero"] - p["step_s"] / e["blas"]["s"]) < 1e-9
at_limit = e["blas"]["flops"] / (1e9 * e["sgemm_peak_gflops"])
assert abs(case["ratio_ceiling_at_limit"] - p["step_s"] / at_limit) < 1e-9
assert case["ratio"] <= case["ratio_ceiling_outside_blas_zero"], case
assert 0 < case["expt_optimizer_share_at_model_rate"] < 1, case["expt_optimizer_share_at_model_rate"]
assert len(p["losses"]) == 3, p["losses"]  # warmup + steps; the profiled steps are not reported
# The peer ran on the fastest correct OpenBLAS core of expt's probes, and says which it loaded.
good = [q for q in e["sgemm_probes"] if q["backend"] == "openblas" and q["correct"] and not q["error"]]
assert p["openblas_core"] == max(good, key=lambda q: q["gflops"])["kernel"], (p["openblas_core"], good)
assert case["peer_openblas_core"] == p["openblas_core"] and case["machine"] == e["machine"]
# The summary line gives the range of the expt processes' own limits (one process here).
peak = e["sgemm_peak_gflops"]
assert f"sgemm peak per expt process {peak:.1f}-{peak:.1f} GFLOP/s" in open(sys.argv[2]).read()
PY
echo "compare.py: table and record OK"
