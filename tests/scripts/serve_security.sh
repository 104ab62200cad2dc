#!/usr/bin/env bash
# `expt serve` security (docs/dashboard.md "Security"): bad directories are refused at start with a
# clear error (exit 2); --host 0.0.0.0 prints a warning; path traversal (plain, percent-encoded
# and double-encoded dots, absolute paths, a symbolic link leading out), write methods, a foreign
# Host header and malformed requests are refused over raw sockets, and the server keeps answering.
source "$(dirname "$0")/lib.sh"

mkdir -p "$work/empty"
echo "not a directory" > "$work/file"
set +e
"$EXPT" serve "$work/missing" "$work/file" "$work/empty" --port 0 > "$work/bad.out" 2>&1
rc=$?
set -e
[[ $rc -eq 2 ]] || die "bad directories: exit $rc, expected 2: $(cat "$work/bad.out")"
grep -q "$work/missing: no such directory" "$work/bad.out" || die "no message for a missing directory: $(cat "$work/bad.out")"
grep -q "$work/file: not a directory" "$work/bad.out" || die "no message for a file: $(cat "$work/bad.out")"
grep -q "$work/empty is neither a sweep directory" "$work/bad.out" || die "no message for an empty directory"

"$EXPT" sweep "$EXPT_SOURCE_DIR/tests/fixtures/serve_study.yaml" --set search.seeds=[1] --out "$work/sweep" \
  > "$work/sweep.out" 2>&1 || die "the sweep failed: $(cat "$work/sweep.out")"
secret="outside-secret-$RANDOM$RANDOM"
echo "$secret" > "$work/outside.txt"
ln -s "$work/outside.txt" "$work/sweep/link_outside"

# --host 0.0.0.0: served, with a warning.
"$EXPT" serve "$work/sweep" --host 0.0.0.0 --port 0 > "$work/any.out" 2> "$work/any.err" &
any_pid=$!
wait_for_file "$work/any.out" 30
for _ in $(seq 200); do grep -q "dashboard at" "$work/any.out" && break; sleep 0.05; done
kill -TERM $any_pid
wait $any_pid || die "expt serve stopped by SIGTERM did not exit 0"
grep -q "warning: --host 0.0.0.0 serves the dashboard to every machine" "$work/any.err" \
  || die "no warning for --host 0.0.0.0: $(cat "$work/any.err")"

start_server "$work/sweep"
trap stop_server EXIT
port=${serve_url##*:}
port=${port%/}
"$EXPT_PYTHON" "$scripts/serve_security.py" 127.0.0.1 "$port" "$secret"
kill -0 "$serve_pid" || die "the server died"
echo "serve_security: ok"
