#!/usr/bin/env bash
# `expt serve` while a sweep writes the directory (docs/dashboard.md "What is read"): the test
# polls the overview, the trial pages and the curves of every running trial as fast as it can while
# a slowed-down sweep (EXPT_TEST_STEP_DELAY_MS) runs. Every answer is whole, running trials show
# their closed segments only (the newest, possibly open one is left out), and the sweep does not
# notice: it exits 0 with every trial COMPLETED in one attempt.
source "$(dirname "$0")/lib.sh"

study="$EXPT_SOURCE_DIR/tests/fixtures/serve_study.yaml"
# The first trial's start writes sweep.h5 and status.json; serve refuses a directory without them.
EXPT_TEST_STEP_DELAY_MS=40 "$EXPT" sweep "$study" --set search.seeds=[1] --out "$work/sweep" > "$work/sweep.out" 2>&1 &
sweep_pid=$!
trap 'kill -TERM $sweep_pid 2> /dev/null || true; stop_server' EXIT
wait_for_file "$work/sweep/status.json" 60
start_server "$work/sweep"
"$EXPT_PYTHON" "$scripts/serve_api.py" live "$serve_url" "$work/sweep" "$sweep_pid"
wait $sweep_pid || die "the sweep failed while being served: $(cat "$work/sweep.out")"
echo "serve_live: ok"
