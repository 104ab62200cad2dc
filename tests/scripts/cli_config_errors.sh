#!/usr/bin/env bash
# Bad configuration through the real tool: every error printed as file:line:col: key.path: message,
# exit code 2, and nothing written to the output directory (no training started).
source "$(dirname "$0")/lib.sh"

cat > "$work/bad.yaml" <<'YAML'
seed: 1
task: {type: word_problem, group: S3, seq_len: 16}
model:
  d_model: 64
  n_layers: 2
optimizer:
  lr: -0.001
train:
  stpes: 100
YAML

set +e
"$EXPT" run "$work/bad.yaml" --out "$work/out" > "$work/stdout.txt" 2> "$work/stderr.txt"
rc=$?
set -e
[[ $rc -eq 2 ]] || die "expected exit code 2, got $rc"
[[ ! -e $work/out ]] || die "the output directory was created for an invalid config"
grep -qF "$work/bad.yaml:7:7: optimizer.lr: " "$work/stderr.txt" || die "no positioned lr error: $(cat "$work/stderr.txt")"
grep -qF "$work/bad.yaml:9:3: train.stpes: " "$work/stderr.txt" || die "no positioned unknown-key error"
grep -q "did you mean 'steps'" "$work/stderr.txt" || die "no suggestion for the typo"

# --set overrides are validated the same way, with their own position.
set +e
"$EXPT" validate "$EXPT_SOURCE_DIR/configs/quickstart.yaml" --set train.batch_size=abc > /dev/null 2> "$work/set.txt"
rc=$?
set -e
[[ $rc -eq 2 ]] || die "a bad --set was accepted (rc $rc)"
grep -q "^--set:1:18: train.batch_size: " "$work/set.txt" || die "bad --set error position: $(cat "$work/set.txt")"

# validate --print emits canonical YAML that validates again to the same trial id.
"$EXPT" validate "$EXPT_SOURCE_DIR/configs/quickstart.yaml" --print > "$work/resolved.yaml"
id1=$("$EXPT" validate "$EXPT_SOURCE_DIR/configs/quickstart.yaml" 2>&1 | sed -n 's/.*trial id \([0-9a-f]*\).*/\1/p')
id2=$("$EXPT" validate "$work/resolved.yaml" 2>&1 | sed -n 's/.*trial id \([0-9a-f]*\).*/\1/p')
[[ -n $id1 && $id1 == "$id2" ]] || die "resolved config has another trial id ($id1 vs $id2)"
echo "cli_config_errors: ok"
