#!/usr/bin/env bash
# One study per sweep directory (docs/sweeps.md, docs/reliability.md): a different study (another
# file, or the same file with overrides that change its points) on a directory holding a sweep is
# refused with exit code 2 before anything runs, alone and under mpirun, and no file of the first
# sweep changes (sha256 of every file); overrides of the run settings (`sweep:`) resume the same
# study and more seeds extend it in place; `--add-to-existing` adds the second study's trials next to the first's, each study
# keeping its own index, both analysable and equal to each study run alone.
source "$(dirname "$0")/lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

write_study() {  # $1 file, $2 name, $3 learning rates
  cat > "$1" <<YAML
study: $2
base:
  task: {type: word_problem, group: Z5, seq_len: 12, eval_lengths: [12]}
  model: {d_model: 16, n_layers: 1, mixer: {type: attention, heads: 2}, mlp: {intermediate_size: 32}}
  optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0.1}
  schedule: {type: cosine, warmup: 5}
  train: {steps: 20, batch_size: 8, eval_every: 10, eval_batches: 1}
search:
  strategy: grid
  seeds: [1]
  space: {optimizer.lr: $3}
sweep: {ranks_per_trial: 1, max_attempts: 2}
YAML
}
write_study "$work/a.yaml" first "[3.0e-3, 1.0e-2]"
write_study "$work/b.yaml" second "[1.0e-2, 3.0e-2]"  # shares the lr 1e-2 trial with the first
d=$work/d

fingerprint() { (cd "$d" && find . \( -type f -o -type l \) -print0 | sort -z | xargs -0 sha256sum); }

"$EXPT" sweep "$work/a.yaml" --out "$d" > "$work/a.out" 2>&1 || die "first sweep failed: $(cat "$work/a.out")"
[[ -f $d/study.json ]] || die "the sweep did not record its study in study.json"
before=$(fingerprint)

# Refused: rc 2, the message names both studies and both ways out, nothing changed.
refused() {  # $1 label, then the command
  local label=$1
  shift
  set +e
  "$@" > "$work/refused.out" 2>&1
  local rc=$?
  set -e
  [[ $rc -eq 2 ]] || die "$label: expected exit code 2, got $rc: $(cat "$work/refused.out")"
  grep -qF "holds the sweep of study 'first'" "$work/refused.out" || die "$label: first study not named: $(cat "$work/refused.out")"
  grep -qF "Use --out elsewhere, or --add-to-existing to add this study's trials to it" "$work/refused.out" \
    || die "$label: no way out given: $(cat "$work/refused.out")"
  [[ $(fingerprint) == "$before" ]] || die "$label: files of the first sweep changed: $(diff <(echo "$before") <(fingerprint))"
}
refused "another study" "$EXPT" sweep "$work/b.yaml" --out "$d"
grep -qF "not of study 'second'" "$work/refused.out" || die "the second study is not named: $(cat "$work/refused.out")"
refused "another study under mpirun" mpirun -np 2 "$EXPT" sweep "$work/b.yaml" --out "$d"
refused "an override that changes the base config" "$EXPT" sweep "$work/a.yaml" --set base.train.steps=30 --out "$d"

# The same study with a run setting changed is the same study: it resumes (nothing left to run).
"$EXPT" sweep "$work/a.yaml" --set sweep.max_attempts=3 --out "$d" > "$work/same.out" 2>&1 \
  || die "the same study with sweep.max_attempts changed was refused: $(cat "$work/same.out")"
# More seeds repeat the same points: the same study, extended in place (2 more trials).
"$EXPT" sweep "$work/a.yaml" --set sweep.max_attempts=3 --set 'search.seeds=[1, 2]' --out "$d" > "$work/seeds.out" 2>&1 \
  || die "the same study with more seeds was refused: $(cat "$work/seeds.out")"
[[ $(ls "$d/trials" | wc -l) -eq 4 ]] || die "the study extended with a seed does not hold 4 trials"
before=$(fingerprint)

# --add-to-existing: the second study's index in studies/second, its trials in trials/.
"$EXPT" sweep "$work/b.yaml" --add-to-existing --out "$d" > "$work/add.out" 2>&1 \
  || die "--add-to-existing failed: $(cat "$work/add.out")"
while read -r sum file; do  # every file of the first sweep is unchanged but study.json (checked below)
  [[ $file == ./study.json || $(cd "$d" && sha256sum "$file" | cut -d' ' -f1) == "$sum" ]] \
    || die "--add-to-existing changed $file"
done <<< "$before"
[[ -f $d/studies/second/sweep.h5 ]] || die "no index of the added study"
"$EXPT_PYTHON" - "$d" <<'PY' || die "study.json or the trial sets are wrong"
import json, pathlib, sys, h5py
d = pathlib.Path(sys.argv[1])
studies = json.loads((d / "study.json").read_text())["studies"]
assert [(s["name"], s["index"]) for s in studies] == [("first", "."), ("second", "studies/second")], studies
ids = {}
for name, index in (("first", d), ("second", d / "studies" / "second")):
    with h5py.File(index / "sweep.h5") as f:
        rows = f["trials"][:]
        sweep_id = f.attrs["sweep_id"]
        assert (sweep_id.decode() if isinstance(sweep_id, bytes) else sweep_id) == name, sweep_id
    ids[name] = {r["trial_id"].decode() for r in rows}
    assert len(ids[name]) == (4 if name == "first" else 2), ids
    assert all(r["status"].decode() == "COMPLETED" for r in rows), rows
    for i in ids[name]:
        assert (d / "trials" / i / "result.h5").is_file(), i
assert len(ids["first"] & ids["second"]) == 1, ids  # the shared lr 1e-2 trial is trained once
assert {p.name for p in (d / "trials").iterdir()} == ids["first"] | ids["second"]
PY
"$EXPT" analyze "$d" > "$work/analyze-a.out" 2>&1 || die "analyze of the first study failed: $(cat "$work/analyze-a.out")"
"$EXPT" analyze "$d/studies/second" > "$work/analyze-b.out" 2>&1 \
  || die "analyze of the added study failed: $(cat "$work/analyze-b.out")"
# (the first study's index was last written by the run with sweep.max_attempts=3 and two seeds)
"$EXPT" sweep "$work/a.yaml" --set sweep.max_attempts=3 --set 'search.seeds=[1, 2]' --out "$work/ref-a" > /dev/null 2>&1 \
  || die "reference of the first study failed"
"$EXPT" sweep "$work/b.yaml" --out "$work/ref-b" > /dev/null 2>&1 || die "reference of the second study failed"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref-a" "$d" || die "the first study differs from its reference"
"$EXPT_PYTHON" "$scripts/compare_sweeps.py" "$work/ref-b" "$d/studies/second" || die "the added study differs from its reference"

# Once added, the second study resumes in its own index, with or without the flag.
"$EXPT" sweep "$work/b.yaml" --out "$d" > "$work/again.out" 2>&1 || die "rerun of the added study failed: $(cat "$work/again.out")"
echo "study_per_directory: 3 refusals (exit 2, files unchanged), a run-setting override resumed, more seeds extended it, an added study" \
  "shares trials/ and is analysable"
