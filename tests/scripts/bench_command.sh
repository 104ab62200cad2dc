#!/usr/bin/env bash
# `expt bench` through the real tool at a tiny size: the table and the JSON report come out, the
# JSON parses and its figures are consistent (tokens/s = batch * length / step time, phase times
# within the step, BLAS time and flops per phase, analytic bytes = the sum of its parts, parameter bytes = 4 * n_params); bad
# options are refused; --dump writes the files bench/peer/check_same_model.py reads; --blas-products
# lists the step's products; bench/compare_binaries.py alternates variants and compares their losses.
source "$(dirname "$0")/lib.sh"
config=$EXPT_SOURCE_DIR/bench/configs/gla.yaml
tiny=(--set model.d_model=32 --set model.n_layers=1 --set task.seq_len=32 --set train.batch_size=2
      --set model.mlp.intermediate_size=64)

"$EXPT" bench "$config" "${tiny[@]}" --steps 2 --warmup 1 > "$work/table.txt" 2>&1 \
  || die "expt bench (table) failed: $(cat "$work/table.txt")"
for field in "tokens/s" "MFU" "sgemm peak" "sgemm probes" "machine" "optimizer" "peak RSS" "analytic" "BLAS"; do
  grep -q "$field" "$work/table.txt" || die "table lacks '$field': $(cat "$work/table.txt")"
done
# AdamW (the config's optimizer) makes no BLAS call, so the table has no optimizer-products line.
if grep -q "optimizer       products" "$work/table.txt"; then die "AdamW reported BLAS products"; fi

for mixer in gla deltaproduct attention; do
  "$EXPT" bench "$EXPT_SOURCE_DIR/bench/configs/$mixer.yaml" "${tiny[@]}" --set optimizer.type=muon --steps 3 \
    --warmup 1 --format json --dump "$work/dump_$mixer" > "$work/$mixer.json" 2> "$work/$mixer.err" \
    || die "expt bench $mixer --format json failed: $(cat "$work/$mixer.err")"
  "$EXPT_PYTHON" - "$work/$mixer.json" "$work/dump_$mixer" "$mixer" <<'PY' || die "bad JSON report for $mixer"
import json, math, os, sys
j = json.load(open(sys.argv[1]))
c = j["config"]
assert c["mixer"] == sys.argv[3] and c["optimizer"] == "muon" and c["d_model"] == 32, c
assert j["steps"] == 3 and j["warmup"] == 1 and len(j["losses"]) == 4, (j["steps"], j["losses"])
assert all(math.isfinite(x) and x > 0 for x in j["losses"]), j["losses"]
assert abs(j["tokens_per_s"] - c["batch"] * c["seq_len"] / j["step_s"]) <= 1e-6 * j["tokens_per_s"]
assert abs(j["steps_per_s"] * j["step_s"] - 1) < 1e-9
assert j["sgemm_peak_gflops"] > 0 and j["flops_per_token"] > 6 * j["n_params_nonembed"]
assert abs(j["mfu"] - j["achieved_gflops"] / j["sgemm_peak_gflops"]) < 1e-9
# The machine's limit is the best correct probe (both backends in process, OpenBLAS's other core
# types in children), never below the backend in use; the second MFU is against that backend.
probes = j["sgemm_probes"]
assert {p["backend"] for p in probes} >= {"onednn", "openblas"}, probes
assert all(p["how"] for p in probes) and sum(p["how"] == "in process" for p in probes) == 2, probes
good = [p["gflops"] for p in probes if p["correct"] and not p["error"]]
assert j["sgemm_peak_gflops"] == max(good), (j["sgemm_peak_gflops"], probes)
assert j["backend_sgemm_gflops"] <= j["sgemm_peak_gflops"] and j["gemm_backend"] in ("libxsmm", "onednn", "openblas")
assert abs(j["mfu_backend"] - j["achieved_gflops"] / j["backend_sgemm_gflops"]) < 1e-9
assert j["bf16_peak_gflops"] is None and j["mfu_bf16"] is None, j  # fp32: no bf16 limit
assert j["gemm_backend"] in j["machine"] and j["sgemm_peak_source"], j["machine"]
phases = j["phases"]
assert set(phases) == {"data", "forward", "backward", "reduce", "optimizer"}, phases
assert all(p["s"] >= 0 for p in phases.values())
assert sum(p["s"] for p in phases.values()) <= j["step_s"] * 1.0001, (phases, j["step_s"])
# BLAS accounting: the model's products in forward and backward, Newton-Schulz in the optimizer,
# none in data and reduce; each phase's BLAS time within the phase; totals = sums of the phases.
assert all(p["blas_s"] <= p["s"] * 1.0001 + 1e-6 for p in phases.values()), phases
assert all(abs(p["blas_gflops"] - (p["blas_flops"] / p["blas_s"] * 1e-9 if p["blas_s"] > 0 else 0)) < 1e-6
           for p in phases.values()), phases
for name in ("forward", "backward", "optimizer"):
    assert phases[name]["blas_flops"] > 0 and phases[name]["blas_calls"] > 0, (name, phases[name])
for name in ("data", "reduce"):
    assert phases[name]["blas_flops"] == 0 and phases[name]["blas_calls"] == 0, (name, phases[name])
b = j["blas"]
assert abs(b["flops"] - sum(p["blas_flops"] for p in phases.values())) <= 1e-9 * b["flops"], b
assert abs(b["s"] + b["outside_s"] - j["step_s"]) <= 1e-9 * j["step_s"], b
oa = j["optimizer_arithmetic"]
assert oa["flops"] == phases["optimizer"]["blas_flops"], oa
assert 0 < oa["share_at_model_rate"] < 1 and oa["model_blas_gflops"] > 0, oa
m = j["memory"]
assert m["params_bytes"] == 4 * j["n_params"] == m["grads_bytes"], m
parts = m["params_bytes"] + m["grads_bytes"] + m["optimizer_bytes"] + m["activations_bytes"]
assert abs(m["analytic_bytes"] - parts) <= 1e-9 * parts, m
assert m["optimizer_bytes"] > m["params_bytes"], m  # Muon momentum + AdamW m, v of the rest
assert m["peak_rss_bytes"] >= m["baseline_rss_bytes"] > 0, m
assert abs(m["rss_over_analytic"] - m["peak_rss_bytes"] / m["analytic_bytes"]) < 1e-9
d = sys.argv[2]
man = json.load(open(os.path.join(d, "manifest.json")))
assert sum(p["size"] for p in man["params"]) == j["n_params"]
assert man["losses"][:2] == j["losses"][:2]
for name in ("params0.f32", "grads1.f32", "params1.f32"):
    assert os.path.getsize(os.path.join(d, name)) == 4 * j["n_params"], name
for name in ("inputs1.i32", "targets2.i32"):
    assert os.path.getsize(os.path.join(d, name)) == 4 * man["batch"] * man["seq_len"], name
PY
done

# --blas-products: one row per product, in the table and the JSON; with one timed step the rows sum to
# the step's BLAS calls and flops exactly, and they are ordered by time.
"$EXPT" bench "$EXPT_SOURCE_DIR/bench/configs/deltaproduct.yaml" "${tiny[@]}" --steps 1 --warmup 1 --blas-products \
  > "$work/products.txt" 2>&1 || die "expt bench --blas-products failed: $(cat "$work/products.txt")"
grep -q "BLAS products   per step" "$work/products.txt" || die "no product table: $(cat "$work/products.txt")"
grep -Eq "^    sgemm (NN|NT|TN|TT) [0-9]+x[0-9]+x[0-9]+" "$work/products.txt" || die "no product row: $(cat "$work/products.txt")"
if grep -q "BLAS products" "$work/table.txt"; then die "product table without --blas-products"; fi
"$EXPT" bench "$EXPT_SOURCE_DIR/bench/configs/deltaproduct.yaml" "${tiny[@]}" --steps 1 --warmup 1 --blas-products \
  --format json > "$work/products.json" 2> "$work/products.err" || die "--blas-products JSON: $(cat "$work/products.err")"
"$EXPT_PYTHON" - "$work/products.json" <<'PY' || die "bad --blas-products JSON"
import json, sys
j = json.load(open(sys.argv[1]))
rows, b = j["blas_products"], j["blas"]
assert rows and sum(r["calls"] for r in rows) == b["calls"], (len(rows), b)
assert abs(sum(r["flops"] for r in rows) - b["flops"]) <= 1e-9 * b["flops"], b
assert all(r["s"] >= s["s"] for r, s in zip(rows, rows[1:])), [r["s"] for r in rows]
assert all(r["flops"] == 2.0 * r["m"] * r["n"] * r["k"] * r["calls"] for r in rows if r["product"].startswith("sgemm")), rows
assert abs(sum(r["share_of_blas"] for r in rows) - 1) < 1e-6, rows
PY

# train.precision: bf16 adds the machine's bf16 limit (gemm_bf16 on square products, checked for
# correct results) and the MFU against it, in the table and the JSON; only where the CPU has bf16
# instructions (elsewhere bf16 mode is refused at start-up, tests/kernels/gemm_bf16_test.cpp).
if grep -qw avx512_bf16 /proc/cpuinfo && [[ -z ${DNNL_MAX_CPU_ISA:-} ]]; then
  "$EXPT" bench "$config" "${tiny[@]}" --set train.precision=bf16 --steps 1 --warmup 1 > "$work/bf16.txt" 2>&1 \
    || die "expt bench in bf16 failed: $(cat "$work/bf16.txt")"
  grep -q "bf16 peak .* GFLOP/s, the machine's bf16 limit: gemm_bf16" "$work/bf16.txt" || die "no bf16 peak: $(cat "$work/bf16.txt")"
  grep -q "MFU (bf16)" "$work/bf16.txt" || die "no bf16 MFU: $(cat "$work/bf16.txt")"
  "$EXPT" bench "$config" "${tiny[@]}" --set train.precision=bf16 --steps 1 --warmup 1 --format json \
    > "$work/bf16.json" 2> "$work/bf16.err" || die "expt bench in bf16 (JSON) failed: $(cat "$work/bf16.err")"
  "$EXPT_PYTHON" - "$work/bf16.json" <<'PY' || die "bad bf16 JSON report"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["bf16_peak_correct"] is True and j["bf16_peak_gflops"] > 0, j
assert abs(j["mfu_bf16"] - j["achieved_gflops"] / j["bf16_peak_gflops"]) < 1e-9, j
assert abs(j["mfu"] - j["achieved_gflops"] / j["sgemm_peak_gflops"]) < 1e-9, j
PY
else
  echo "bench_command: the bf16 section is not run here: no avx512_bf16, or DNNL_MAX_CPU_ISA set"
fi

# A forced backend is used and reported; an unknown one is refused before anything runs; OpenBLAS
# forced to its oldest (SSE3) kernels on any AVX machine draws the start-up warning, with the fix.
EXPT_GEMM_BACKEND=openblas "$EXPT" bench "$config" "${tiny[@]}" --steps 1 --warmup 0 --format json \
  > "$work/openblas.json" 2> "$work/openblas.err" || die "EXPT_GEMM_BACKEND=openblas failed: $(cat "$work/openblas.err")"
"$EXPT_PYTHON" -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["gemm_backend"] == "openblas", j["machine"]' \
  "$work/openblas.json" || die "the forced backend is not the one reported"
if EXPT_GEMM_BACKEND=mkl "$EXPT" bench "$config" --steps 1 > "$work/bad.txt" 2>&1; then die "EXPT_GEMM_BACKEND=mkl accepted"; fi
grep -q "EXPT_GEMM_BACKEND: unknown GEMM backend 'mkl'; expected onednn or openblas" "$work/bad.txt" \
  || die "unknown backend message: $(cat "$work/bad.txt")"
if grep -qw avx /proc/cpuinfo; then
  EXPT_GEMM_BACKEND=openblas OPENBLAS_CORETYPE=Prescott "$EXPT" bench "$config" "${tiny[@]}" --steps 1 --warmup 0 \
    > "$work/prescott.txt" 2>&1 || die "bench on Prescott kernels failed: $(cat "$work/prescott.txt")"
  grep -q "expt: warning: GEMM backend openblas runs its 'Prescott' kernels (sse) on a CPU with" "$work/prescott.txt" \
    || die "no start-up warning for Prescott kernels: $(cat "$work/prescott.txt")"
  grep -q "OPENBLAS_CORETYPE=Prescott is set" "$work/prescott.txt" || die "the warning does not say why"
  if grep -q "expt: warning" "$work/table.txt"; then die "warning with the default backend: $(cat "$work/table.txt")"; fi
fi

if "$EXPT" bench "$config" --steps 0 > "$work/bad.txt" 2>&1; then die "--steps 0 was accepted"; fi
if "$EXPT" bench "$config" --format yaml > "$work/bad.txt" 2>&1; then die "--format yaml was accepted"; fi
if "$EXPT" bench "$config" --set model.d_model=0 > "$work/bad.txt" 2>&1; then die "d_model 0 was accepted"; fi
grep -q "model.d_model" "$work/bad.txt" || die "config error not reported: $(cat "$work/bad.txt")"
# bench/compare_binaries.py: one binary as two variants must give equal losses; against a wrapper
# that runs it with another seed, unequal ones (so the check can fail); an environment setting
# reaches the run (an unknown backend makes it fail); one variant is refused.
compare=("$EXPT_PYTHON" "$EXPT_SOURCE_DIR/bench/compare_binaries.py" "$config" "${tiny[@]}" --rounds 2 --steps 1)
"${compare[@]}" --variant "a=$EXPT" --variant "b=$EXPT" --json "$work/pair.json" > "$work/pair.txt" 2>&1 \
  || die "compare_binaries.py failed: $(cat "$work/pair.txt")"
grep -q "^paired step ratio a / b: median" "$work/pair.txt" || die "no paired ratio: $(cat "$work/pair.txt")"
grep -q "^losses identical: True" "$work/pair.txt" || die "one binary, unequal losses: $(cat "$work/pair.txt")"
"$EXPT_PYTHON" -c "import json,sys; j=json.load(open(sys.argv[1])); assert len(j['runs']['a']) == 2 and len(j['runs']['b']) == 2" \
  "$work/pair.json" || die "compare_binaries.py JSON lacks the runs"
printf '#!/bin/sh\nexec "%s" "$@" --set seed=2\n' "$EXPT" > "$work/other_seed" && chmod +x "$work/other_seed"
"${compare[@]}" --variant "a=$EXPT" --variant "b=$work/other_seed" > "$work/seed.txt" 2>&1 \
  || die "compare_binaries.py with a wrapper failed: $(cat "$work/seed.txt")"
grep -q "^losses identical: False" "$work/seed.txt" || die "two seeds, equal losses: $(cat "$work/seed.txt")"
if "${compare[@]}" --variant "a=$EXPT" --variant "b=$EXPT:EXPT_GEMM_BACKEND=nonsense" > "$work/bad.txt" 2>&1; then
  die "an unknown backend in a variant's environment did not fail"
fi
grep -q "variant b" "$work/bad.txt" || die "the failing variant is not named: $(cat "$work/bad.txt")"
if "${compare[@]}" --variant "a=$EXPT" > "$work/bad.txt" 2>&1; then die "one variant was accepted"; fi
echo "expt bench: table, JSON and dump OK"
