#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs the whole test suite through ctest.
#   scripts/test.sh               release build, every test (unit, MPI, scripts)
#   scripts/test.sh asan-ubsan    the same under AddressSanitizer + UBSan (slow script tests excluded)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
export CCACHE_BASEDIR="$PWD"  # cache hits across clones of the repository

bash scripts/install-deps.sh
cmake --preset "$preset" > /dev/null
cmake --build --preset "$preset" -j "$(nproc)"
extra=()
[[ $preset == asan-ubsan ]] && extra=(-LE slow)
ctest --preset "$preset" -j "$(nproc)" --timeout 900 "${extra[@]}"
