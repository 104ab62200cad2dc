#!/usr/bin/env bash
# README command 1: installs what is missing, builds the release tool, and runs the quickstart
# study end to end (configs/quickstart_study.yaml: AdamW vs Muon, 16 search trials and 16
# confirmation trials on 2 training ranks), ending with its analysis table and the paths of its plots. Results land in runs/quickstart_study/.
# Extra arguments go to `expt sweep` (e.g. --set scales.tokens_per_param=1 for a shorter run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export CCACHE_BASEDIR="$PWD"
cmake --preset release > /dev/null
cmake --build --preset release -j "$(nproc)" --target expt
bash scripts/quickstart_study.sh build/release/expt runs/quickstart_study "$@"
