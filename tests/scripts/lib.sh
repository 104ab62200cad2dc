# Shared helpers for the script tests (sourced). ctest sets EXPT, EXPT_SOURCE_DIR, EXPT_PYTHON and
# EXPT_WORK; each test works in its own fresh folder under EXPT_WORK.
set -euo pipefail
: "${EXPT:?path of the expt tool}" "${EXPT_SOURCE_DIR:?}" "${EXPT_PYTHON:=/usr/bin/python3}" "${EXPT_WORK:=/tmp/expt-test-work}"
test_name=$(basename "${BASH_SOURCE[1]}" .sh)
work="$EXPT_WORK/$test_name"
rm -rf "$work"
mkdir -p "$work"
scripts="$EXPT_SOURCE_DIR/tests/scripts"

die() { echo "FAIL: $*" >&2; exit 1; }

# Waits until the file exists (up to $2 seconds).
wait_for_file() {
  local f=$1 limit=${2:-120} i=0
  while [[ ! -e $f ]]; do
    sleep 0.05
    i=$((i + 1))
    ((i < limit * 20)) || die "timed out waiting for $f"
  done
}

# two_workers STUDY OUT STEP_DELAY_MS: two `expt worker`s on one directory, at once, to the end;
# fails the test with a worker's output when either fails. Logs: OUT.w1.out, OUT.w2.out.
two_workers() {
  EXPT_TEST_STEP_DELAY_MS=$3 "$EXPT" worker "$1" --out "$2" > "$2.w1.out" 2>&1 &
  local w1=$!
  EXPT_TEST_STEP_DELAY_MS=$3 "$EXPT" worker "$1" --out "$2" > "$2.w2.out" 2>&1 &
  local w2=$!
  wait $w1 || die "worker 1 on $2 failed: $(cat "$2.w1.out")"
  wait $w2 || die "worker 2 on $2 failed: $(cat "$2.w2.out")"
}

# SIGKILLs every process of session $1 (a job started with setsid) and waits until all are gone.
kill_session() {
  local sid=$1 pids i=0
  pids=$(ps -o pid= -s "$sid" || true)
  [[ -z $pids ]] || kill -9 $pids 2> /dev/null || true
  wait "$sid" 2> /dev/null || true
  while [[ -n $(ps -o pid= -s "$sid" || true) ]]; do
    sleep 0.05
    i=$((i + 1))
    ((i < 200)) || die "processes of session $sid survived SIGKILL"
  done
}

# Starts `expt serve ARGS... --port 0` in the background; sets serve_pid and serve_url (read from
# the line it prints once the socket is bound). Stop it with stop_server.
start_server() {
  "$EXPT" serve "$@" --port 0 > "$work/serve.out" 2> "$work/serve.err" &
  serve_pid=$!
  local i=0
  while ! grep -q "dashboard at http://" "$work/serve.out" 2> /dev/null; do
    kill -0 "$serve_pid" 2> /dev/null || die "expt serve exited: $(cat "$work/serve.err")"
    sleep 0.05
    i=$((i + 1))
    ((i < 600)) || die "expt serve did not start: $(cat "$work/serve.err")"
  done
  serve_url=$(grep -o "http://[^ ]*/" "$work/serve.out" | head -1)
}
stop_server() {
  kill -TERM "$serve_pid" 2> /dev/null || true
  wait "$serve_pid" 2> /dev/null || true
}
