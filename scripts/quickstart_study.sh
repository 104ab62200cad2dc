#!/usr/bin/env bash
# The quickstart study (configs/quickstart_study.yaml) with a built tool: a sweep on 2 training ranks
# (mpirun -np 3: a coordinator and 2 groups of one rank), its analysis table, and its plots.
# Called by scripts/quickstart.sh (README command 1) and by tests/scripts/quickstart.sh.
#   scripts/quickstart_study.sh EXPT OUT_DIR [--set study.key=value]...
# Rerunning resumes: finished trials are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
expt=$1 out=$2
shift 2

if ((EUID == 0)); then  # Open MPI refuses root unless told; 3 ranks may exceed the cores
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
status=0  # a FAILED trial (exit 1) still leaves a study to analyse; its failure is reported above
mpirun -np 3 "$expt" sweep configs/quickstart_study.yaml --out "$out" "$@" || status=$?
((status == 0 || status == 1)) || exit "$status"
"$expt" analyze "$out"
echo
echo "plots:"
/usr/bin/python3 analysis/python/plot_sweep.py "$out" | sed 's/^/  /'
echo "tables: $out/analysis/ (analysis.txt, analysis.md, analysis.json, *.csv)"
exit "$status"
