#!/usr/bin/env bash
# What each trial of a study is, in `expt serve` (docs/dashboard.md "Roles"): a real sweep of
# tests/fixtures/serve_roles_study.yaml (WSD branches and search.confirm). While it runs, every
# branch that has not forked yet shows the role and fork step `expt plan` prints; once it has, what
# its attempts.jsonl says; confirmation seeds are marked as status.json marks them. After it: the
# trial pages say the same with the fork points each trunk committed, each cell's confirmation is
# the line `expt status` prints, and the analysis carries `expt analyze`'s summary paragraph and
# table headings.
source "$(dirname "$0")/lib.sh"

study="$EXPT_SOURCE_DIR/tests/fixtures/serve_roles_study.yaml"
"$EXPT" plan "$study" > "$work/plan.out" 2>&1 || die "expt plan failed: $(cat "$work/plan.out")"
EXPT_TEST_STEP_DELAY_MS=20 "$EXPT" sweep "$study" --out "$work/sweep" > "$work/sweep.out" 2>&1 &
sweep_pid=$!
trap 'kill -TERM $sweep_pid 2> /dev/null || true; stop_server' EXIT
wait_for_file "$work/sweep/status.json" 60
start_server "$work/sweep"
"$EXPT_PYTHON" "$scripts/serve_api.py" roles_live "$serve_url" "$work/sweep" "$work/plan.out" "$sweep_pid"
wait $sweep_pid || die "the sweep failed: $(cat "$work/sweep.out")"

"$EXPT" status "$work/sweep" > "$work/status.out" || die "expt status failed"
"$EXPT" analyze "$work/sweep" --format json > "$work/analyze.json" 2> /dev/null || die "expt analyze failed"
"$EXPT" analyze "$work/sweep" > "$work/analyze.txt" 2> /dev/null || die "expt analyze failed"
"$EXPT_PYTHON" "$scripts/serve_api.py" roles "$serve_url" "$work/sweep" "$work/plan.out" "$work/status.out" \
  "$work/analyze.json" "$work/analyze.txt"
kill -0 "$serve_pid" || die "the server died"
echo "serve_roles: ok"
