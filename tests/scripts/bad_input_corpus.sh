#!/usr/bin/env bash
# Bad input (docs/reliability.md): every file of tests/corpus/bad is a broken trial config
# (<name>.yaml, checked with `expt validate`) or study (<name>.study.yaml, `expt plan`; another
# command in <name>.command, e.g. `expt validate` of a study or `expt run` of a trial the memory
# pre-flight refuses), optional extra arguments in <name>.args (e.g. a bad --set; @WORK@ stands for
# the test's scratch folder), optional environment settings in <name>.env (one VAR=value a line,
# e.g. the test-only EXPT_TEST_MEMORY_AVAILABLE that makes the refusal's numbers deterministic), and
# the exact expected stderr in <name>.expected: `file:line:col: key.path: message` lines and the
# count, or the refusal. Each must exit 2 with exactly that output (for `run`, without the
# machine-dependent `expt: warning:` line about the GEMM kernels). Then malformed data inputs (token files, result.h5, status.json) through the
# real tool: a clear error naming the file, or (result.h5 of a trial) quarantine and a rebuild;
# never a crash (exit code >= 128).
source "$(dirname "$0")/lib.sh"
corpus=$EXPT_SOURCE_DIR/tests/corpus/bad
tried=0

cd "$corpus"
for f in *.yaml; do
  name=${f%.yaml}
  args=()
  [[ -e $name.args ]] && read -ra args < <(sed "s|@WORK@|$work|g" "$name.args")
  envs=()
  [[ -e $name.env ]] && mapfile -t envs < "$name.env"
  cmd=validate
  [[ $f == *.study.yaml ]] && cmd=plan
  [[ -e $name.command ]] && read -r cmd < "$name.command"
  rc=0
  env "${envs[@]}" "$EXPT" "$cmd" "$f" "${args[@]}" > /dev/null 2> "$work/$name.err" || rc=$?
  [[ $rc -eq 2 ]] || die "$f: expected exit code 2, got $rc: $(cat "$work/$name.err")"
  if [[ $cmd == run ]]; then
    grep -v '^expt: warning: ' "$work/$name.err" > "$work/$name.err.kept" || true
    mv "$work/$name.err.kept" "$work/$name.err"
  fi
  diff -u "$name.expected" "$work/$name.err" > "$work/$name.diff" || die "$f: other errors than expected:
$(cat "$work/$name.diff")"
  tried=$((tried + 1))
done
((tried >= 40)) || die "the corpus has only $tried cases"
cd "$work"

# ---- malformed data inputs ----
no_crash() {  # $1 name, $2 expected exit code, $3 text the error must contain, then the command
  local name=$1 want=$2 text=$3 rc=0
  shift 3
  "$@" > "$work/$name.out" 2>&1 || rc=$?
  ((rc < 128)) || die "$name: crashed (exit code $rc): $(tail -5 "$work/$name.out")"
  [[ $rc -eq $want ]] || die "$name: expected exit code $want, got $rc: $(tail -5 "$work/$name.out")"
  grep -qF -- "$text" "$work/$name.out" || die "$name: no '$text' in: $(tail -5 "$work/$name.out")"
  tried=$((tried + 1))
}
token_config() {  # $1 token file, $2 format
  printf 'task: {type: tokens, train_path: %s, val_path: %s, format: %s, seq_len: 16}\n' "$1" "$1" "$2"
  printf 'model: {d_model: 16, n_layers: 1}\ntrain: {steps: 2, batch_size: 2, eval_every: 1, eval_batches: 1}\n'
}
head -c 2048 /dev/urandom > "$work/random.bin"
head -c 100 /dev/urandom > "$work/short.bin"
head -c 4097 /dev/zero > "$work/odd.bin"
token_config "$work/random.bin" llmc > "$work/t1.yaml"
token_config "$work/short.bin" llmc > "$work/t2.yaml"
token_config "$work/odd.bin" nanogpt > "$work/t3.yaml"
no_crash tokens_bad_magic 1 "random.bin: bad magic" "$EXPT" run "$work/t1.yaml" --out "$work/t1"
no_crash tokens_short_header 1 "short.bin: truncated" "$EXPT" run "$work/t2.yaml" --out "$work/t2"
no_crash tokens_odd_length 1 "odd.bin: 4097 bytes is not a whole number of uint16 tokens" \
  "$EXPT" run "$work/t3.yaml" --out "$work/t3"

# A trial whose result.h5 is garbage: quarantined, rebuilt from its checkpoint and segments.
printf 'task: {type: word_problem, group: Z5, seq_len: 8}\nmodel: {d_model: 16, n_layers: 1}\n' > "$work/tiny.yaml"
printf 'train: {steps: 6, batch_size: 4, eval_every: 3, eval_batches: 1, checkpoint_every: 3}\n' >> "$work/tiny.yaml"
"$EXPT" run "$work/tiny.yaml" --out "$work/ref" > /dev/null 2>&1 || die "tiny run failed"
"$EXPT" run "$work/tiny.yaml" --out "$work/garbage" > /dev/null 2>&1 || die "tiny run failed"
head -c 5000 /dev/urandom > "$work/garbage/result.h5"
no_crash result_garbage 0 "quarantined unreadable result" "$EXPT" run "$work/tiny.yaml" --progress plain --out "$work/garbage"
"$EXPT_PYTHON" "$scripts/compare_results.py" "$work/ref/result.h5" "$work/garbage/result.h5" \
  || die "the rebuilt result differs"
# `expt status` on damaged or missing sweep files.
mkdir -p "$work/sweep_dir"
printf '{"study": "x", "counts": {' > "$work/sweep_dir/status.json"
no_crash status_truncated_json 1 "cannot read $work/sweep_dir/status.json" "$EXPT" status "$work/sweep_dir"
no_crash status_missing 1 "not found (is $work/nothing a sweep directory?)" "$EXPT" status "$work/nothing"
echo '{"study": 5}' > "$work/sweep_dir/status.json"
no_crash status_wrong_types 1 "cannot read $work/sweep_dir/status.json" "$EXPT" status "$work/sweep_dir"
# A second study on a directory that holds a sweep: refused (exit 2) with both studies, their
# identities (the ones `expt validate` prints) and the fix; nothing written.
mini_study() {  # $1 name, $2 seed
  printf 'study: %s\nbase:\n  task: {type: word_problem, group: Z5, seq_len: 8}\n' "$1"
  printf '  model: {d_model: 16, n_layers: 1}\n  train: {steps: 2, batch_size: 4, eval_every: 1, eval_batches: 1}\n'
  printf 'search: {strategy: grid, seeds: [%s]}\n' "$2"
}
mini_study owner 1 > "$work/owner.yaml"
mini_study intruder 2 > "$work/intruder.yaml"
"$EXPT" sweep "$work/owner.yaml" --out "$work/owned" > /dev/null 2>&1 || die "owner sweep failed"
identity() { "$EXPT" validate "$1" 2>&1 | sed -n 's/.*(identity \([0-9a-f]*\)).*/\1/p'; }
owner_id=$(identity "$work/owner.yaml")
intruder_id=$(identity "$work/intruder.yaml")
[[ -n $owner_id && -n $intruder_id ]] || die "expt validate printed no study identity"
rc=0
"$EXPT" sweep "$work/intruder.yaml" --out "$work/owned" > /dev/null 2> "$work/intruder.err" || rc=$?
[[ $rc -eq 2 ]] || die "second study: expected exit code 2, got $rc: $(cat "$work/intruder.err")"
cat > "$work/intruder.expected" << EXPECTED
expt: $work/owned holds the sweep of study 'owner' (identity $owner_id), not of study 'intruder' (identity $intruder_id, $work/intruder.yaml): another study, or the same file with overrides that change its search, scales or base. Nothing was run. Use --out elsewhere, or --add-to-existing to add this study's trials to it
EXPECTED
diff -u "$work/intruder.expected" "$work/intruder.err" || die "second study: other message than expected"
[[ ! -e $work/owned/studies ]] || die "a refused study wrote into the directory"
tried=$((tried + 1))

echo "bad_input_corpus: bad inputs tried: $tried (configs and studies from tests/corpus/bad, token files," \
  "result.h5, status.json), each a clear error, no crash"
