#!/usr/bin/env bash
# `expt --version` (docs/cli.md): the project version, a commit of this repository (with -dirty when
# the tree had changes at configure time), the build type, and the GEMM backend actually in use
# (EXPT_GEMM_BACKEND switches it, so the line is computed at run time, not baked in).
source "$(dirname "$0")/lib.sh"

version=$(sed -n 's/^project(expt VERSION \([0-9.]*\) .*/\1/p' "$EXPT_SOURCE_DIR/CMakeLists.txt")
for backend in openblas onednn; do
  EXPT_GEMM_BACKEND=$backend "$EXPT" --version > "$work/$backend.out" 2>&1 || die "expt --version failed"
  mapfile -t lines < "$work/$backend.out"
  [[ ${#lines[@]} -eq 4 ]] || die "expected 4 lines: $(cat "$work/$backend.out")"
  [[ ${lines[0]} == "expt $version" ]] || die "first line: ${lines[0]} (project version $version)"
  [[ ${lines[1]} =~ ^commit\ ([0-9a-f]{12})(-dirty)?$ ]] || die "second line: ${lines[1]}"
  if git -C "$EXPT_SOURCE_DIR" rev-parse --git-dir > /dev/null 2>&1; then
    git -C "$EXPT_SOURCE_DIR" cat-file -e "${BASH_REMATCH[1]}^{commit}" || die "${BASH_REMATCH[1]} is no commit of this repository"
  fi
  [[ ${lines[2]} =~ ^build\ type\ [A-Za-z]+$ ]] || die "third line: ${lines[2]}"
  [[ ${lines[3]} == "GEMM backend $backend: "* ]] || die "fourth line with EXPT_GEMM_BACKEND=$backend: ${lines[3]}"
done
echo "version_line: $(head -2 "$work/onednn.out" | tr '\n' ' ')"
