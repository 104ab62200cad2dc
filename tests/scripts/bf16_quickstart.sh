#!/usr/bin/env bash
# ctest-labels: slow
# train.precision: bf16 on the quickstart (configs/quickstart.yaml, 600 steps, ~3 s a run): the
# train-loss curve tracks fp32's on seeds 1 and 2, bf16 runs repeat bit for bit, and both learn;
# with oneDNN limited to AVX2 (DNNL_MAX_CPU_ISA) the mode is refused at start-up.
# Skipped (77) on a CPU without avx512_bf16, where the mode is refused at start-up
# (tests/kernels/gemm_bf16_test.cpp checks that message).
#
# Tolerance (docs/decisions.md 124), on means over 50-step windows of the train loss, same seed,
# same data and initialisation, so only rounding differs:
#   * before the quickstart's loss drop (steps 1-100) every window within 0.03 nats: measured
#     differences are <= 0.01 there on an AMX Xeon and <= 0.019 on an AMD EPYC Zen 5 (avx512_bf16,
#     no AMX), whose bf16 run of seed 2 began its drop at step ~130 (window 100-150: 0.044);
#   * no bound across the drop itself: it is a sudden transition whose timing any rounding change
#     moves, the compiler's included (the fp32 run built at -O1 for the sanitizers reached it so
#     much later on seed 2 that the window gap to bf16 was 0.38 nats, against 0.19 at -O3), so a
#     bound there tests the transition's chaos, not the products;
#   * both final eval losses below half of chance (ln 5), as tests/scripts/quickstart.sh asks.
# Labelled slow: 6 minutes under the sanitizers, where the kernel tests cover the bf16 products.
source "$(dirname "$0")/lib.sh"

grep -qw avx512_bf16 /proc/cpuinfo || { echo "skipped: no avx512_bf16 on this CPU"; exit 77; }

run() {  # name, then --set arguments
  local name=$1
  shift
  local args=()
  for s in "$@"; do args+=(--set "$s"); done
  "$EXPT" run "$EXPT_SOURCE_DIR/configs/quickstart.yaml" --progress plain --out "$work/$name" "${args[@]}" \
    > "$work/$name.txt" 2>&1 || die "run $name failed: $(tail -20 "$work/$name.txt")"
}
run fp32_1 seed=1
run bf16_1 seed=1 train.precision=bf16
run bf16_1_again seed=1 train.precision=bf16
run fp32_2 seed=2
run bf16_2 seed=2 train.precision=bf16
grep -q "precision: bf16" "$work/bf16_1/trial.yaml" || die "trial.yaml does not record train.precision: bf16"
# oneDNN limited below its bf16 kernels: refused at start-up with the cause and the fix.
if DNNL_MAX_CPU_ISA=AVX2 "$EXPT" run "$EXPT_SOURCE_DIR/configs/quickstart.yaml" --progress plain --out "$work/refused" \
  --set train.precision=bf16 > "$work/refused.txt" 2>&1; then
  die "bf16 ran with DNNL_MAX_CPU_ISA=AVX2"
fi
grep -q "error: train.precision: bf16 needs oneDNN's bf16 kernels.*DNNL_MAX_CPU_ISA=AVX2.*train.precision: fp32" \
  "$work/refused.txt" || die "no clear start-up error: $(tail -5 "$work/refused.txt")"

"$EXPT_PYTHON" - "$work" <<'PY' || die "bf16 does not track fp32 within the stated tolerance"
import math, sys, h5py, numpy as np
work = sys.argv[1]
def load(name):
    f = h5py.File(f"{work}/{name}/result.h5", "r")
    return f["metrics/train"][:]["loss"], float(f["summary"].attrs["final_eval_loss"])
again, _ = load("bf16_1_again")
first, _ = load("bf16_1")
assert np.array_equal(first, again), "two bf16 runs of the same config differ"
window = 50
for seed in (1, 2):
    fp32, fp32_final = load(f"fp32_{seed}")
    bf16, bf16_final = load(f"bf16_{seed}")
    assert len(fp32) == len(bf16) == 600
    assert not np.array_equal(fp32, bf16), "bf16 gave fp32's exact losses: the mode is not applied"
    gaps = [abs(fp32[i:i + window].mean() - bf16[i:i + window].mean()) for i in range(0, 600, window)]
    print(f"seed {seed}: window gaps {' '.join(f'{g:.3f}' for g in gaps)}; "
          f"final eval loss fp32 {fp32_final:.4f} bf16 {bf16_final:.4f}")
    assert max(gaps[:2]) <= 0.03, f"seed {seed}: before the loss drop, gap {max(gaps[:2]):.4f} > 0.03"
    for name, final in (("fp32", fp32_final), ("bf16", bf16_final)):
        assert final < 0.5 * math.log(5), f"seed {seed}: {name} did not learn (final eval loss {final:.4f})"
PY
