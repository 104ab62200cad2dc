#!/usr/bin/env bash
# Gradient traces (docs/trace-format.md) through the real tool: a tiny run of each optimizer records
# its trace; `expt replay` with the run's own config must reproduce the run's parameters bit for bit
# (compared with the run's checkpoints after steps 3 and 4, read by h5py). Then damaged copies of a
# trace (missing name, shape mismatch, NaN, wrong dtype, missing role, garbage file) must each be
# refused with exit code 1 and a message that names the problem.
source "$(dirname "$0")/lib.sh"
config=$EXPT_SOURCE_DIR/configs/quickstart.yaml
tiny=(--set train.steps=5 --set train.checkpoint_every=1 --set train.eval_every=5 --set train.eval_batches=1
      --set train.batch_size=4 --set model.d_model=16 --set model.n_layers=2 --set model.mlp.intermediate_size=32
      --set schedule.warmup=2)
declare -A extra=(
  [adamw]=""
  [muon]="--set optimizer.lr=0.02 --set train.diagnostics_every=2"
  [soap]="--set optimizer.precondition_frequency=2"
  [mfac]="--set optimizer.window=3 --set optimizer.momentum=0.5"
  [dct_adamw]="--set optimizer.rank=4 --set optimizer.refresh_every=2 --set optimizer.on_refresh=remap"
)
for opt in adamw muon soap mfac dct_adamw; do
  # shellcheck disable=SC2206
  sets=("${tiny[@]}" --set optimizer.type=$opt ${extra[$opt]})
  "$EXPT" run "$config" "${sets[@]}" --set "train.record_grad_trace=$work/$opt/trace.h5" --progress quiet \
    --out "$work/$opt/run" > "$work/$opt.txt" 2>&1 || die "$opt: run failed: $(tail -20 "$work/$opt.txt")"
  [[ -f $work/$opt/trace.h5 && ! -e $work/$opt/trace.h5.tmp ]] || die "$opt: no trace written"
  "$EXPT" replay --optimizer "$config" "${sets[@]}" --trace "$work/$opt/trace.h5" --out "$work/$opt/replay.h5" \
    > "$work/$opt.replay.txt" 2>&1 || die "$opt: replay failed: $(cat "$work/$opt.replay.txt")"
  "$EXPT_PYTHON" - "$work/$opt" <<'PY' || die "$opt: the replay does not reproduce the run"
import sys, h5py, numpy as np
d = sys.argv[1]
trace, replay = h5py.File(d + "/trace.h5", "r"), h5py.File(d + "/replay.h5", "r")
names = sorted(trace["params"], key=lambda n: int(trace["params"][n].attrs["index"]))
assert trace["lr"].shape == (5,), trace["lr"].shape
for n in names:
    assert replay["params"][n].shape == (6,) + trace["params"][n].shape, n
    assert np.array_equal(replay["params"][n][0], trace["params"][n][()]), n
for step in (3, 4):
    ckpt = h5py.File(f"{d}/run/checkpoints/step-{step}/state.h5", "r")["params"][()]
    flat = np.concatenate([replay["params"][n][step].ravel() for n in names])
    assert flat.dtype == np.float32 and ckpt.dtype == np.float32
    assert flat.shape == ckpt.shape, (flat.shape, ckpt.shape)
    assert flat.tobytes() == ckpt.tobytes(), (step, np.abs(flat - ckpt).max())
    before = np.concatenate([replay["params"][n][step - 1].ravel() for n in names])
    assert not np.array_equal(before, flat), "the parameters did not move"
PY
done

# ---- the Muon run also wrote optimizer diagnostics every 2 steps: check them against numpy, from
# the replayed trajectory (update = W_t − W_{t−1}) and the trace's gradients ----
"$EXPT_PYTHON" - "$work/muon" <<'PY' || die "diagnostics.h5 does not match numpy"
import sys, h5py, numpy as np
d = sys.argv[1]
diag, replay, trace = h5py.File(d + "/run/diagnostics.h5", "r"), h5py.File(d + "/replay.h5", "r"), h5py.File(d + "/trace.h5", "r")
steps = diag["step"][()]
assert list(steps) == [2, 4], steps
names = [n.decode() for n in diag["names"][()]]
assert names == [n for n in sorted(trace["params"], key=lambda n: int(trace["params"][n].attrs["index"]))
                 if trace["params"][n].ndim == 2], names
for r, t in enumerate(steps):
    for c, n in enumerate(names):
        w0 = replay["params"][n][t - 1].astype(np.float64)
        w1 = replay["params"][n][t].astype(np.float64)
        g = trace["grads"][n][t - 1].astype(np.float64)
        u = w1 - w0
        sv = np.linalg.svd(u, compute_uv=False)
        close = lambda a, b, tol: abs(a - b) <= tol * abs(b)
        assert close(diag["update_rms"][r, c], np.sqrt(np.mean(u * u)), 1e-9), (n, t)
        assert close(diag["weight_fro"][r, c], np.linalg.norm(w1), 1e-9), (n, t)
        assert close(diag["grad_fro"][r, c], np.linalg.norm(g), 1e-9), (n, t)
        est = diag["update_spectral"][r, c]
        assert est <= sv[0] * (1 + 1e-9) and est >= 0.9 * sv[0], (n, t, est, sv[0])
        assert close(diag["update_stable_rank"][r, c], np.sum(sv ** 2) / est ** 2, 1e-9), (n, t)
PY

# ---- damaged traces are refused with a clear message ----
good=$work/adamw/trace.h5
damage() {  # name, python statements on file f (h5py, r+), expected message fragment
  cp "$good" "$work/$1.h5"
  "$EXPT_PYTHON" - "$work/$1.h5" "$2" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+")
name = sorted(f["params"])[0]
exec(sys.argv[2])
PY
  local rc=0
  "$EXPT" replay --optimizer "$config" --trace "$work/$1.h5" --out "$work/$1.out.h5" > /dev/null 2> "$work/err.txt" \
    || rc=$?
  [[ $rc -eq 1 ]] || die "$1: expected exit code 1, got $rc"
  grep -qF -- "$3" "$work/err.txt" || die "$1: no '$3' in: $(cat "$work/err.txt")"
  [[ ! -e $work/$1.out.h5 ]] || die "$1: an output was written"
}
damage missing_grad 'del f["grads"][name]' "missing /grads/"
damage extra_grad 'f["grads"].create_dataset("zz.extra", data=np.zeros((5, 2), np.float32))' \
  "/grads/zz.extra has no initial value"
damage shape 'g = f["grads"][name][()]; del f["grads"][name]; f["grads"][name] = g[:, :1]' "expected [steps, ...shape]"
damage nan 'g = f["grads"][name]; x = g[3]; x.flat[0] = np.nan; g[3] = x' "non-finite value at step 4"
damage dtype 'g = f["grads"][name][()]; del f["grads"][name]; f["grads"][name] = g.astype(np.float64)' \
  "must be float32"
damage lr_dtype 'del f["lr"]; f["lr"] = np.ones(5, np.float32)' "/lr must be float64"
damage role 'del f["params"][name].attrs["role"]' "has no \`role\` attribute"
damage no_lr 'del f["lr"]' "missing dataset /lr"
head -c 4096 /dev/urandom > "$work/garbage.h5"
rc=0
"$EXPT" replay --optimizer "$config" --trace "$work/garbage.h5" --out "$work/g.out.h5" > /dev/null 2> "$work/err.txt" \
  || rc=$?
[[ $rc -eq 1 ]] && grep -qF "not an HDF5 file" "$work/err.txt" || die "garbage file: rc $rc, $(cat "$work/err.txt")"
echo "grad_trace_replay: ok"
