#!/usr/bin/env bash
# `expt --version` (docs/cli.md): the project version, a commit of this repository (with -dirty when
# the tree had changes at build time), the build type, and the GEMM backend actually in use
# (EXPT_GEMM_BACKEND switches it, so the line is computed at run time, not baked in). Then the
# build-time step that records the commit (cmake/build_provenance.cmake) on a scratch repository:
# a new commit changes the header, a modified file adds -dirty, an unchanged tree rewrites nothing.
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

repo="$work/repo" header="$work/provenance.hpp"
git init -q "$repo"
git -C "$repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
echo a > "$repo/file" && git -C "$repo" add file && git -C "$repo" -c user.name=t -c user.email=t@t commit -q -m two
record() { cmake -DSOURCE_DIR="$repo" -DOUT="$header" -P "$EXPT_SOURCE_DIR/cmake/build_provenance.cmake"; }
record
head=$(git -C "$repo" rev-parse --short=12 HEAD)
grep -qx "#define EXPT_GIT_COMMIT \"$head\"" "$header" || die "clean tree: $(cat "$header")"
grep -qx "#define EXPT_GIT_SHA \"$head\"" "$header" || die "sha: $(cat "$header")"
touch -d '2000-01-01' "$header"
record
[[ $(stat -c %Y "$header") == $(date -d '2000-01-01' +%s) ]] || die "an unchanged commit rewrote the header (rebuilds for nothing)"
echo b > "$repo/file"
record
grep -qx "#define EXPT_GIT_COMMIT \"$head-dirty\"" "$header" || die "modified tree: $(cat "$header")"
git -C "$repo" -c user.name=t -c user.email=t@t commit -q -am three
record
new=$(git -C "$repo" rev-parse --short=12 HEAD)
[[ $new != "$head" ]] && grep -qx "#define EXPT_GIT_COMMIT \"$new\"" "$header" || die "after a commit: $(cat "$header")"
echo "version_line: $(head -2 "$work/onednn.out" | tr '\n' ' ')"
