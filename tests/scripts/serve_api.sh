#!/usr/bin/env bash
# `expt serve`'s JSON API (docs/dashboard.md) over a real sweep of tests/fixtures/serve_study.yaml:
# the overview, trial pages, curves and analysis equal what h5py, json and `expt analyze` read from
# the same files; damaged files (garbage result.h5, segment and sweep.h5, truncated status.json) are
# left out with a note, never an error; a single trial directory is served too.
source "$(dirname "$0")/lib.sh"

"$EXPT" sweep "$EXPT_SOURCE_DIR/tests/fixtures/serve_study.yaml" --out "$work/sweep" > "$work/sweep.out" 2>&1 \
  || die "the sweep failed: $(cat "$work/sweep.out")"
"$EXPT" analyze "$work/sweep" --format json > "$work/analyze.json" 2> /dev/null || die "expt analyze failed"

# Damaged copies: one trial's result.h5 is garbage, another has no result.h5 and a garbage first
# segment, status.json is cut mid-file; in the second copy sweep.h5 is garbage.
cp -r "$work/sweep" "$work/damaged"
mapfile -t ids < <(ls "$work/damaged/trials")
head -c 3000 /dev/urandom > "$work/damaged/trials/${ids[0]}/result.h5"
rm "$work/damaged/trials/${ids[1]}/result.h5"
head -c 3000 /dev/urandom > "$work/damaged/trials/${ids[1]}/metrics/seg-1-0.h5"
head -c 100 "$work/sweep/status.json" > "$work/damaged/status.json"
cp -r "$work/sweep" "$work/broken_index"
head -c 3000 /dev/urandom > "$work/broken_index/sweep.h5"

start_server "$work/sweep" "$work/damaged" "$work/broken_index" "$work/sweep/trials/${ids[2]}"
trap stop_server EXIT
"$EXPT_PYTHON" "$scripts/serve_api.py" finished "$serve_url" "$work/sweep" "$work/analyze.json"
"$EXPT_PYTHON" "$scripts/serve_api.py" damaged "$serve_url" "$work/damaged" 1 "${ids[0]}" "${ids[1]}"
"$EXPT_PYTHON" "$scripts/serve_api.py" broken_index "$serve_url" "$work/broken_index" 2
"$EXPT_PYTHON" "$scripts/serve_api.py" trial "$serve_url" "$work/sweep/trials/${ids[2]}" 3
kill -0 "$serve_pid" || die "the server died"
echo "serve_api: ok"
