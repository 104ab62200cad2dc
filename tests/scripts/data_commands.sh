#!/usr/bin/env bash
# The data tasks through the real tool: configs/mqar.yaml and configs/lm_text.yaml train at a tiny
# size; bad task keys are reported at their position; `expt data preview` decodes samples; and
# `expt data dump` writes what the trainer sees, which Python (h5py) re-derives here from the task
# definitions and the corpus files: MQAR labels from the context, text windows from the fortune
# files and the documented block split, rows as functions of (step, index) only.
source "$(dirname "$0")/lib.sh"
configs=$EXPT_SOURCE_DIR/configs

# ---- the example configs train end to end at a tiny size ----
tiny=(--set train.steps=4 --set train.eval_every=2 --set train.eval_batches=1 --set train.batch_size=4
      --set model.d_model=16 --progress plain)
"$EXPT" run "$configs/mqar.yaml" "${tiny[@]}" --out "$work/mqar" > "$work/mqar.txt" 2>&1 \
  || die "configs/mqar.yaml failed: $(tail -20 "$work/mqar.txt")"
"$EXPT" run "$configs/lm_text.yaml" "${tiny[@]}" --set model.n_layers=1 --set task.seq_len=32 \
  --set 'task.eval_lengths=[32,64]' --out "$work/lm" > "$work/lm.txt" 2>&1 \
  || die "configs/lm_text.yaml failed: $(tail -20 "$work/lm.txt")"
"$EXPT_PYTHON" - "$work/mqar/result.h5" "$work/lm/result.h5" <<'PY' || die "tiny runs did not record their metrics"
import math, sys, h5py
for path, fields in ((sys.argv[1], ("token_acc@64", "token_acc@128")), (sys.argv[2], ("loss@32", "loss@64"))):
    f = h5py.File(path, "r")
    status = f["summary"].attrs["status"]
    assert status in (b"COMPLETED", "COMPLETED"), (path, status)
    ev = f["metrics/eval"][:]
    for name in fields:
        assert name in ev.dtype.names, (path, name, ev.dtype.names)
        assert all(math.isfinite(float(v)) for v in ev[name]), (path, name)
PY

# ---- task keys are checked when the config is loaded ----
expect_config_error() {  # file, expected message fragment
  local rc=0
  "$EXPT" validate "$1" > /dev/null 2> "$work/err.txt" || rc=$?
  [[ $rc -eq 2 ]] || die "$1: expected exit code 2, got $rc"
  grep -qF -- "$2" "$work/err.txt" || die "$1: no '$2' in: $(cat "$work/err.txt")"
}
printf 'task:\n  type: mqar\n  seq_len: 64\n  num_kv_pairs: 20\n' > "$work/bad_mqar.yaml"
expect_config_error "$work/bad_mqar.yaml" "bad_mqar.yaml:4:17: task.num_kv_pairs: 4 * task.num_kv_pairs = 80 exceeds"
printf 'task: {type: mod_arith, seq_len: 40, eval_lengths: [41]}\n' > "$work/bad_mod.yaml"
expect_config_error "$work/bad_mod.yaml" "task.eval_lengths[0]: eval length 41 must be even"
printf 'task: {type: text, paths: []}\n' > "$work/bad_text.yaml"
expect_config_error "$work/bad_text.yaml" "task.paths: task.type text needs at least one file"
printf 'task: {type: tokens, val_path: v.bin, format: llm}\n' > "$work/bad_tokens.yaml"
expect_config_error "$work/bad_tokens.yaml" "task.format: "
printf 'task: {type: parity, group: S3}\n' > "$work/bad_parity.yaml"
expect_config_error "$work/bad_parity.yaml" "key 'group' does not apply to task.type 'parity'"

# ---- expt data preview ----
"$EXPT" data preview "$configs/mqar.yaml" > "$work/preview_mqar.txt" 2>&1 \
  || die "data preview failed: $(tail -5 "$work/preview_mqar.txt")"
grep -q "^task mqar: vocab_size 256, train length 64, eval lengths 64 128" "$work/preview_mqar.txt" \
  || die "no task summary: $(head -3 "$work/preview_mqar.txt")"
grep -q "^train step 1, sequence 0 (length 64):" "$work/preview_mqar.txt" || die "no first training sequence"
grep -qE "^  labels: @[0-9]+ [0-9]+ -> [0-9]+" "$work/preview_mqar.txt" || die "no decoded labels"
"$EXPT" data preview "$configs/lm_text.yaml" > "$work/preview_text.txt" 2>&1 \
  || die "data preview failed: $(tail -5 "$work/preview_text.txt")"
grep -q '^  target: "' "$work/preview_text.txt" || die "text preview has no decoded target"

# ---- expt data dump ----
dump() {  # config, split, count, out
  "$EXPT" data dump "$1" --split "$2" --count "$3" --out "$4" > "$work/dump.txt" 2>&1 \
    || die "data dump $2 of $1 failed: $(tail -5 "$work/dump.txt")"
}
sed 's/^  batch_size: 64/  batch_size: 16/' "$configs/mqar.yaml" > "$work/mqar_b16.yaml"
grep -q "batch_size: 16" "$work/mqar_b16.yaml" || die "could not derive the batch-16 config"
dump "$configs/mqar.yaml" train 150 "$work/mqar_train.h5"
dump "$configs/mqar.yaml" train 70 "$work/mqar_train70.h5"
dump "$work/mqar_b16.yaml" train 40 "$work/mqar_train_b16.h5"
dump "$configs/mqar.yaml" eval 12 "$work/mqar_eval.h5"
dump "$configs/lm_text.yaml" train 24 "$work/text_train.h5"
dump "$configs/lm_text.yaml" eval 8 "$work/text_eval.h5"
[[ ! -e $work/mqar_train.h5.tmp ]] || die "the temporary dump file was left behind"

"$EXPT_PYTHON" - "$work" <<'PY' || die "the dumps do not match the task definitions"
import glob, math, os, sys
import h5py, numpy as np

work = sys.argv[1]
def load(name):
    return h5py.File(os.path.join(work, name), "r")
def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)

# MQAR: every labelled position holds a key of the context and is labelled with its value.
def check_mqar(inputs, targets, V=256, N=4):
    assert inputs.dtype == np.int32 and targets.dtype == np.int32
    for x, y in zip(inputs, targets):
        keys, values = x[0:2 * N:2], x[1:2 * N:2]
        assert len(set(keys)) == N and all(1 <= k < V // 2 for k in keys), keys
        assert len(set(values)) == N and all(V // 2 <= v < V for v in values), values
        bound = dict(zip(keys.tolist(), values.tolist()))
        labelled = np.nonzero(y != -1)[0]
        assert len(labelled) == N and all(p >= 2 * N and (p - 2 * N) % 2 == 0 for p in labelled), labelled
        assert sorted(x[labelled].tolist()) == sorted(keys.tolist())  # each key queried once
        for p in labelled:
            assert y[p] == bound[int(x[p])], (p, x[p], y[p])
        rest = np.ones(len(x), bool); rest[:2 * N] = False; rest[labelled] = False
        assert (x[rest] == 0).all()  # random_non_queries: false

f = load("mqar_train.h5")
a = f.attrs
assert text(a["task"]) == "mqar" and text(a["split"]) == "train"
assert (int(a["vocab_size"]), int(a["ignore_index"]), int(a["train_length"]), int(a["length"])) == (256, -1, 64, 64)
assert list(a["eval_lengths"]) == [64, 128] and int(a["batch_size"]) == 64 and int(a["count"]) == 150
inputs, targets = f["inputs"][:], f["targets"][:]
assert inputs.shape == (150, 64) and targets.shape == (150, 64)
check_mqar(inputs, targets)
r = np.arange(150)
assert (f["step"][:] == 1 + r // 64).all() and (f["index"][:] == r % 64).all()

# Rows are functions of (step, index): a shorter dump is a prefix, and a dump with batch size 16
# agrees wherever (step, index) coincide (step 1, sequences 0..15).
g = load("mqar_train70.h5")
assert (g["inputs"][:] == inputs[:70]).all() and (g["targets"][:] == targets[:70]).all()
h = load("mqar_train_b16.h5")
assert (h["step"][:] == 1 + np.arange(40) // 16).all()
assert (h["inputs"][:16] == inputs[:16]).all() and (h["targets"][:16] == targets[:16]).all()
assert not (h["inputs"][16:32] == inputs[16:32]).all()  # step 2 is another batch
check_mqar(h["inputs"][:], h["targets"][:])

e = load("mqar_eval.h5")
assert text(e.attrs["split"]) == "eval" and (e["step"][:] == -1).all() and (e["index"][:] == np.arange(12)).all()
assert (e["inputs"][:] == e["eval/64/inputs"][:]).all()
for L in (64, 128):
    assert e[f"eval/{L}/inputs"].shape == (12, L)
    check_mqar(e[f"eval/{L}/inputs"][:], e[f"eval/{L}/targets"][:])
assert not (e["inputs"][:12] == inputs[:12]).all()  # eval is drawn apart from training

# Text: each window (inputs, then the last target) lies in one fortune file, inside blocks of its
# split: 64 KiB blocks numbered over the sorted files, block b in validation iff
# floor((b+1) f) > floor(b f), f = 0.1.
files = sorted(glob.glob("/usr/share/games/fortunes/*.u8"))
assert len(files) >= 40, files
contents, split = [], []
b = 0
for path in files:
    data = open(path, "rb").read()
    contents.append(data)
    s = np.zeros(len(data), bool)
    for off in range(0, len(data), 65536):
        s[off:off + 65536] = math.floor((b + 1) * 0.1) > math.floor(b * 0.1)
        b += 1
    split.append(s)
def check_text(dump, validation):
    x, y = dump["inputs"][:], dump["targets"][:]
    assert (y[:, :-1] == x[:, 1:]).all()  # next-byte targets
    for row_x, row_y in zip(x, y):
        window = bytes(row_x.tolist() + [int(row_y[-1])])
        inside = False
        for data, s in zip(contents, split):
            at = data.find(window)
            while at >= 0 and not inside:
                inside = bool((s[at:at + len(window)] == validation).all())
                at = data.find(window, at + 1)
        assert inside, (validation, window[:40])
t = load("text_train.h5")
assert int(t.attrs["vocab_size"]) == 256 and t["inputs"].shape == (24, 128)
check_text(t, False)
v = load("text_eval.h5")
assert list(v.attrs["eval_lengths"]) == [128, 256] and v["eval/256/inputs"].shape == (8, 256)
check_text(v, True)
check_text(v["eval/256"], True)
print("dumps verified: mqar train/eval, text train/eval")
PY
