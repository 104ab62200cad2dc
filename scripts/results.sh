#!/usr/bin/env bash
# Regenerates one table of docs/results.md from its study (docs/results.md "How these tables are made"):
#   scripts/results.sh NAME [--jobs N] [--out DIR]
# 1. runs configs/results/NAME.yaml with `expt sweep` into runs/results/NAME (or DIR); running the
#    same command again resumes a killed run and skips finished trials;
# 2. writes the run's summary, docs/results/NAME/summary.csv (one row per trial: id, config hash,
#    cell, seed, status, final metrics, wall time) and docs/results/NAME/provenance.json (commit,
#    CPU model, date, command), both meant to be committed;
# 3. rewrites the table's block in docs/results.md from those two files
#    (analysis/python/results_tables.py; tests/scripts/results_tables.sh checks the block).
# --jobs N runs N trials at a time (local workers, docs/distributed.md); default 1.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/results.sh NAME [--jobs N] [--out DIR]}
shift
jobs=1 out=runs/results/$name
while (($#)); do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "scripts/results.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
study=configs/results/$name.yaml
[[ -f $study ]] || { echo "scripts/results.sh: no study $study (have: $(ls configs/results | sed 's/\.yaml$//' | tr '\n' ' '))" >&2; exit 2; }
expt=${EXPT:-build/release/expt}
[[ -x $expt ]] || { echo "scripts/results.sh: $expt not built (cmake --preset release && cmake --build --preset release)" >&2; exit 2; }

if ((jobs > 1)); then
  pids=()
  for ((w = 0; w < jobs; ++w)); do "$expt" worker "$study" --out "$out" & pids+=($!); done
  status=0
  for p in "${pids[@]}"; do wait "$p" || status=$?; done
  ((status == 0 || status == 1)) || exit "$status"
  "$expt" sweep "$study" --out "$out" || status=$?  # every trial is finished: writes the index
else
  status=0
  "$expt" sweep "$study" --out "$out" || status=$?
fi
((status == 0 || status == 1)) || exit "$status"  # 1: some trial FAILED; it is in the summary
/usr/bin/python3 analysis/python/results_tables.py summarize "$name" "$out" --study "$study" \
  --expt "$expt" --command "scripts/results.sh $name$( ((jobs > 1)) && echo " --jobs $jobs")"
/usr/bin/python3 analysis/python/results_tables.py update docs/results.md
echo "docs/results/$name/ and its table in docs/results.md are rewritten: review and commit them"
