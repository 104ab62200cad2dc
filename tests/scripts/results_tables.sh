#!/usr/bin/env bash
# docs/results.md's generated tables say what their committed summaries say (docs/results/NAME/),
# and the check can fail: a changed summary value and a hand-edited table are both caught. Then the
# whole pipeline on a small sweep: summarize writes the files, update renders a block, check passes.
# Labelled slow: its subject is the Python pipeline, and under the sanitizers its three small sweeps
# take 5 min; the C++ they run is sanitized by the sweep_* and wsd_branches tests.
# ctest-labels: slow
source "$(dirname "$0")/lib.sh"
tables="$EXPT_SOURCE_DIR/analysis/python/results_tables.py"
doc="$EXPT_SOURCE_DIR/docs/results.md"

"$EXPT_PYTHON" "$tables" check "$doc" || die "docs/results.md differs from docs/results/"
# Every results study stays a valid study of this build (scripts/results.sh runs them as they are).
for study in "$EXPT_SOURCE_DIR"/configs/results/*.yaml; do
  "$EXPT" plan "$study" > "$work/plan.out" 2>&1 || die "expt plan $study: $(cat "$work/plan.out")"
done
# The optimizer study and its 20-tokens-per-parameter twin are one protocol (decision 156): their
# files may differ in the study name and scales.tokens_per_param only.
"$EXPT_PYTHON" - "$EXPT_SOURCE_DIR/configs/results/fantastic_micro.yaml" \
  "$EXPT_SOURCE_DIR/configs/results/fantastic_chinchilla.yaml" << 'PY' || die "the two optimizer studies drifted apart"
import sys, yaml
a, b = (yaml.safe_load(open(p)) for p in sys.argv[1:])
for d in (a, b):
    del d["study"], d["scales"]["tokens_per_param"]
if a != b:
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} differ beyond the study name and tokens_per_param")
PY

# Planted controls on copies, for every committed study: one summary value changed, one table row
# edited by hand; each must make the check fail.
studies=$(cd "$EXPT_SOURCE_DIR/docs/results" && ls */summary.csv | sed 's|/summary.csv$||')
[[ -n $studies ]] || die "no committed summary in docs/results/"
for name in $studies; do
  rm -rf "$work/results" && cp -r "$EXPT_SOURCE_DIR/docs/results" "$work/results"
  "$EXPT_PYTHON" - "$work/results/$name/summary.csv" "$name" << 'PY'
import csv, json, pathlib, sys
analysis = pathlib.Path(sys.argv[1]).with_name("analysis.json")
if analysis.exists():  # an optimizer study's table renders the losses from `expt analyze`'s JSON
    a = json.loads(analysis.read_text())
    a["tables"]["cells"][0]["best_loss"] = 0.123456
    analysis.write_text(json.dumps(a))
    sys.exit(0)
rows = list(csv.DictReader(open(sys.argv[1])))
# The metric the study's table reads: the halving validation ranks by loss (and prints means over
# seeds, so the planted value shows only through the mean); the others print seq_acc per seed.
prefix = "final_loss@" if sys.argv[2] == "halving_validation" else "final_seq_acc@"
col = next(c for c in rows[0] if c.startswith(prefix))
rows[0][col] = "0.123456"
w = csv.DictWriter(open(sys.argv[1], "w", newline=""), fieldnames=list(rows[0]), lineterminator="\n")
w.writeheader(); w.writerows(rows)
PY
  if "$EXPT_PYTHON" "$tables" check "$doc" --results-dir "$work/results" > "$work/diff1.txt" 2>&1; then
    die "$name: check passed although a summary value changed"
  fi
  if [[ $name == halving_validation ]]; then
    grep -q "^+| " "$work/diff1.txt" || die "$name: the diff shows no changed table row: $(cat "$work/diff1.txt")"
  else
    grep -q "^+.*0\.1235" "$work/diff1.txt" || die "$name: the diff does not show the changed value: $(cat "$work/diff1.txt")"
  fi
  # The block's first table row (the line after its first `| --- |` line) gets a hand-edited cell.
  "$EXPT_PYTHON" - "$doc" "$work/results.md" "$name" << 'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
begin = next(i for i, l in enumerate(lines) if l.startswith(f"<!-- results:{sys.argv[3]} begin "))
row = next(i for i in range(begin, len(lines)) if lines[i - 1].startswith("| --- |"))
assert lines[row].startswith("| "), lines[row]
lines[row] = lines[row][:-1] + "edited |"
open(sys.argv[2], "w").write("\n".join(lines))
PY
  if "$EXPT_PYTHON" "$tables" check "$work/results.md" --results-dir "$EXPT_SOURCE_DIR/docs/results" > "$work/diff2.txt" 2>&1; then
    die "$name: check passed although a table row was edited by hand"
  fi
done

# The pipeline end to end on a 2-trial sweep of the parity study (a few steps).
"$EXPT" sweep "$EXPT_SOURCE_DIR/configs/results/parity.yaml" --out "$work/sweep" \
  --set base.train.steps=20 --set base.train.eval_every=10 --set base.train.checkpoint_every=10 \
  --set 'search.seeds=[4]' > "$work/sweep.log" 2>&1 || die "sweep failed: $(tail "$work/sweep.log")"
"$EXPT_PYTHON" "$tables" summarize parity "$work/sweep" --study "$EXPT_SOURCE_DIR/configs/results/parity.yaml" \
  --expt "$EXPT" --command test --results-dir "$work/fresh"
[[ $(wc -l < "$work/fresh/parity/summary.csv") == 3 ]] || die "summary.csv: expected 2 trials: $(cat "$work/fresh/parity/summary.csv")"
[[ $(wc -l < "$work/fresh/parity/evals.csv") == 7 ]] || die "evals.csv: expected evals at steps 0, 10, 20 of each trial"
printf '# t\n\n<!-- results:parity begin (generated by scripts/results.sh parity: edits here are overwritten) -->\n<!-- results:parity end -->\n' > "$work/fresh.md"
"$EXPT_PYTHON" "$tables" update "$work/fresh.md" --results-dir "$work/fresh" > /dev/null
"$EXPT_PYTHON" "$tables" check "$work/fresh.md" --results-dir "$work/fresh" > /dev/null || die "check fails right after update"
grep -q '^| DeltaNet, beta in (0, 1) | 4 | COMPLETED |' "$work/fresh.md" || die "rendered table lacks the (0, 1) seed-4 row: $(cat "$work/fresh.md")"
grep -q "^| DeltaNet, beta in (0, 2) | 1 | COMPLETED" "$work/fresh.md" && die "rendered table has a seed that did not run"
# Every trial records its CPU time (attempts.jsonl, decision 137), and summarize copies it.
"$EXPT_PYTHON" - "$work/fresh/parity/summary.csv" << 'PY' || die "summary.csv lacks a trial's cpu_s"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sys.exit(0 if rows and all(r["cpu_s"] != "" and float(r["cpu_s"]) > 0 for r in rows) else 1)
PY

# provenance.json dates the run by its own events (the first start and the last event of any
# attempt), not by when it was summarized: summarizing again later changes neither.
sleep 1
"$EXPT_PYTHON" "$tables" summarize parity "$work/sweep" --study "$EXPT_SOURCE_DIR/configs/results/parity.yaml" \
  --expt "$EXPT" --command test --results-dir "$work/again"
"$EXPT_PYTHON" - "$work/sweep" "$work/fresh/parity/provenance.json" "$work/again/parity/provenance.json" << 'PY' \
  || die "provenance.json dates: $(cat "$work/fresh/parity/provenance.json")"
import glob, json, sys
times = [json.loads(l)["time_utc"] for f in glob.glob(sys.argv[1] + "/trials/*/attempts.jsonl") for l in open(f)]
first, again = (json.load(open(p)) for p in sys.argv[2:4])
assert (first["started_utc"], first["finished_utc"]) == (min(times), max(times)), (first, min(times), max(times))
assert (again["started_utc"], again["finished_utc"]) == (min(times), max(times))
assert again["summarized_utc"] > first["summarized_utc"] >= first["finished_utc"]
PY

# The optimizer study's tables (fantastic_micro) on a small study of the same shape: coordinate
# descent, WSD branches over 4 ratios, halving, confirmation seeds; two optimizers, one model size.
cat > "$work/optimizers.yaml" <<'YAML'
study: tiny_optimizer_study
base:
  seed: 1
  task: {type: text, paths: ["/usr/share/games/fortunes/*.u8"], seq_len: 16, eval_lengths: [16], val_fraction: 0.1,
         split_block_bytes: 65536}
  model: {n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {type: swiglu}, tie_embeddings: true}
  optimizer: {weight_decay: 0.1}
  schedule: {type: wsd, warmup: 5, decay: 0.2, min_lr_ratio: 0.1}
  train: {batch_size: 8, eval_every: 100000, eval_batches: 2, checkpoint_every: 500}
search:
  strategy: coordinate_descent
  tolerance: 5.0e-3
  halving: {keep: 0.5, min_points: 2}
  confirm: {seeds: 2, band: tolerance, max_points: 1}
  optimizers:
    adamw: {base: {lr: 4.0e-3}, space: {optimizer.lr: [2.0e-3, 4.0e-3, 8.0e-3]}}
    muon: {base: {lr: 2.0e-2}, space: {optimizer.lr: [1.0e-2, 2.0e-2, 4.0e-2]}}
scales: {tokens_per_param: 0.5, data_ratios: [1, 2, 4, 8], branching: wsd, models: {s: {d_model: 16}}}
sweep: {ranks_per_trial: 1, max_attempts: 2}
YAML
"$EXPT" sweep "$work/optimizers.yaml" --out "$work/opt" > "$work/opt.log" 2>&1 || die "optimizer sweep failed: $(tail "$work/opt.log")"
"$EXPT_PYTHON" "$tables" summarize fantastic_micro "$work/opt" --study "$work/optimizers.yaml" --expt "$EXPT" \
  --command test --results-dir "$work/fresh_opt"
[[ -f $work/fresh_opt/fantastic_micro/analysis.json ]] || die "summarize wrote no analysis.json for a study with scales"
printf '# t\n\n<!-- results:fantastic_micro begin (generated by scripts/results.sh fantastic_micro: edits here are overwritten) -->\n<!-- results:fantastic_micro end -->\n' > "$work/opt.md"
"$EXPT_PYTHON" "$tables" update "$work/opt.md" --results-dir "$work/fresh_opt" > /dev/null
"$EXPT_PYTHON" "$tables" check "$work/opt.md" --results-dir "$work/fresh_opt" > /dev/null \
  || die "optimizer study: check fails right after update"
"$EXPT_PYTHON" - "$work/opt.md" "$work/fresh_opt/fantastic_micro" << 'PY' || die "optimizer study table: $(cat "$work/opt.md")"
import csv, json, re, sys
text = open(sys.argv[1]).read()
analysis = json.load(open(sys.argv[2] + "/analysis.json"))
cells = {(c["optimizer"], c["ratio"]): c for c in analysis["tables"]["cells"]}
# Best loss per cell: the analysis's mean over seeds, 4 decimals, with the seed count.
for opt, name in (("adamw", "AdamW"), ("muon", "Muon")):
    row = next(l for l in text.splitlines() if l.startswith(f"| {name} | ") and "(" in l)
    for r in (1.0, 2.0, 4.0, 8.0):
        c = cells[(opt, r)]
        assert f"{c['best_loss']:.4f}" in row and f"({int(c['seeds'])})" in row, (opt, r, row)
# Every column bolds its best, and nothing farther than the tolerance from it.
speed = [l for l in text.splitlines() if l.startswith("| Muon | s |")]
assert len(speed) == 2 and all(l.count("|") == 7 for l in speed), speed  # tokens and CPU time, 4 ratios
assert re.search(r"^\| 20 \| [^|]+ \| 1\.42 \| 1\.18 \|", text, re.M), "the paper's row at 20 tokens/param"
# The cost table's tokens, counted in Python from each trial's steps, equal `expt analyze`'s own
# budget (the C++ analysis counts what every trial and every PRUNED trunk trained).
total = int(float(re.search(r"^\| total \| (\d+) \| ([0-9.e+]+) \|", text, re.M).group(2)))
budget = sum(b["tokens"] for b in analysis["tables"]["budget"])
assert abs(total - budget) <= 0.001 * budget, (total, budget)
rows = list(csv.DictReader(open(sys.argv[2] + "/summary.csv")))
assert any(r["state"] == "PRUNED" for r in rows) and any(r["confirmation"] == "1" for r in rows)
assert int(re.search(r"shared steps of (\d+) branches", text).group(1)) == sum(int(r["fork_step"]) > 0 for r in rows)
PY

# The recall table (mqar, mqar_attention) on a 4-trial sweep of the attention study (both widths,
# both learning rates, seed 4): a better-lr row per width and every run are rendered.
"$EXPT" sweep "$EXPT_SOURCE_DIR/configs/results/mqar_attention.yaml" --out "$work/mqar" \
  --set base.train.steps=20 --set base.train.eval_every=10 --set base.train.checkpoint_every=10 \
  --set 'search.seeds=[4]' > "$work/mqar.log" 2>&1 || die "mqar sweep failed: $(tail "$work/mqar.log")"
"$EXPT_PYTHON" "$tables" summarize mqar_attention "$work/mqar" --results-dir "$work/fresh_mqar" \
  --study "$EXPT_SOURCE_DIR/configs/results/mqar_attention.yaml" --expt "$EXPT" \
  --command test
printf '# t\n\n<!-- results:mqar_attention begin (generated by scripts/results.sh mqar_attention: edits here are overwritten) -->\n<!-- results:mqar_attention end -->\n' > "$work/mqar.md"
"$EXPT_PYTHON" "$tables" update "$work/mqar.md" --results-dir "$work/fresh_mqar" > /dev/null
"$EXPT_PYTHON" "$tables" check "$work/mqar.md" --results-dir "$work/fresh_mqar" > /dev/null \
  || die "mqar: check fails right after update"
for d in 32 64; do
  for lr in 3e-3 1e-3; do
    grep -qF "| attention | $d | $lr | 4 | COMPLETED |" "$work/mqar.md" || die "mqar table lacks the run d $d lr $lr: $(cat "$work/mqar.md")"
  done
  [[ $(grep -c "^| attention | $d | [13]e-3 | 4 | [01]\.[0-9]" "$work/mqar.md") == 1 ]] \
    || die "mqar table: expected one better-lr row for d_model $d: $(cat "$work/mqar.md")"
done
grep -q '^| attention | [0-9]* | [13]e-3 | [1235] |' "$work/mqar.md" && die "mqar table has a seed that did not run"
# The better-lr row names the lr with the higher final token_acc@64 (one seed here), read from summary.csv.
"$EXPT_PYTHON" - "$work/fresh_mqar/mqar_attention/summary.csv" "$work/mqar.md" << 'PY' || die "mqar table: wrong better lr"
import csv, json, sys
best = {}
for r in csv.DictReader(open(sys.argv[1])):
    c = json.loads(r["config"])
    d, lr, acc = c["model"]["d_model"], c["optimizer"]["lr"], float(r["final_token_acc@64"])
    if d not in best or acc > best[d][1]:
        best[d] = (lr, acc)
text = open(sys.argv[2]).read()
for d, (lr, acc) in best.items():
    row = f"| attention | {d} | {lr:.0e}".replace("e-03", "e-3") + f" | 4 | {acc:.4f} |"
    if row not in text:
        sys.exit(f"no row {row}")
PY

# The hybrid study's rows name the per-layer mixer before the recurrent one (decision 143), so they
# cannot be read as mqar's plain "GLA, no short conv".
if [[ -f "$EXPT_SOURCE_DIR/docs/results/mqar_hybrid/summary.csv" ]]; then
  grep -q '^| BaseConv (block 0) + GLA, no short conv | ' "$doc" || die "mqar_hybrid table lacks the hybrid's label"
fi

echo "results_tables: OK"
