#!/usr/bin/env bash
# README command 1: installs what is missing, builds the release tool, and runs the quickstart
# trial end to end. Results land in runs/quickstart/ (result.h5, metrics, checkpoints, log.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export CCACHE_BASEDIR="$PWD"
cmake --preset release > /dev/null
cmake --build --preset release -j "$(nproc)" --target expt
build/release/expt run configs/quickstart.yaml --out runs/quickstart "$@"
echo "results: runs/quickstart/result.h5  (read it: /usr/bin/python3 tests/scripts/read_result.py runs/quickstart/result.h5)"
