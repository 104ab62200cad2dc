#!/usr/bin/env bash
# The Catch2 harness cannot pass empty (decision 97):
# 1. Planted controls (tests/harness/controls.cpp, linked with the strict main of
#    tests/catch_main.cpp) registered in a scratch ctest tree by tests/cmake/catch_add_tests.cmake:
#    names with ; , [ ] " \ ~ * and a leading '#' each become one entry that runs exactly its own
#    test case (1 assertion in 1 test case) and passes. Negative controls: the case without
#    assertions fails, and an entry whose name matches no test case fails.
# 2. The real build: every test case of every test executable has its ctest entry, and every test
#    executable (the MPI one included) fails when its test spec matches nothing (the strict main).
source "$(dirname "$0")/lib.sh"
: "${EXPT_HARNESS_CONTROLS:?path of test_harness_controls}" "${EXPT_BINARY_DIR:?}"

tree=$work/tree
mkdir -p "$tree"
cmake -D EXECUTABLE="$EXPT_HARNESS_CONTROLS" -D FOLDER=control -D WORKING_DIR="$tree" \
  -D OUTPUT="$tree/controls.cmake" -P "$EXPT_SOURCE_DIR/tests/cmake/catch_add_tests.cmake" \
  || die "catch_add_tests.cmake failed on the controls"
{
  echo 'include(controls.cmake)'
  echo "add_test([==[unmatched]==] [==[$EXPT_HARNESS_CONTROLS]==] [==[no such test case]==])"
} > "$tree/CTestTestfile.cmake"

(cd "$tree" && ctest -N) > "$work/list.txt" || die "ctest -N failed: $(cat "$work/list.txt")"
grep -q "Total Tests: 6$" "$work/list.txt" || die "expected 6 entries (5 controls + 1 unmatched): $(cat "$work/list.txt")"

# Runs one entry by its exact name (ctest -R is a regex: escape it); $2 = pass|fail.
expect() {
  local name=$1 want=$2 regex log rc=0
  regex=$(printf '%s' "$name" | sed 's/[][\\.*^$+?(){}|]/\\&/g')
  log=$work/run.log
  (cd "$tree" && ctest -R "^${regex}\$" --output-on-failure -V) > "$log" 2>&1 || rc=$?
  grep -q "tests failed out of 1$" "$log" || die "'$name' is not exactly one entry: $(cat "$log")"
  if [[ $want == pass ]]; then
    ((rc == 0)) || die "'$name' failed: $(cat "$log")"
  else
    ((rc != 0)) || die "'$name' passed but must fail: $(cat "$log")"
  fi
  if [[ $want == pass ]]; then echo "$name: passed as it must"; else echo "$name: failed as it must"; fi
}
for name in 'planted; a name with a semicolon' 'planted, comma [bracketed] "quoted" back\slash ~tilde *star' \
  '#planted name that starts with a hash' 'planted'; do
  expect "control: $name" pass
  grep -q "All tests passed (1 assertion in 1 test case)" "$work/run.log" \
    || die "'$name' did not run exactly its own test case: $(cat "$work/run.log")"
done
expect "control: planted: no assertions" fail
expect "unmatched" fail
grep -q "No test cases matched 'no such test case'" "$work/run.log" || die "the unmatched entry failed for another reason"

# The real registration.
(cd "$EXPT_BINARY_DIR" && ctest --show-only=json-v1) > "$work/tests.json" || die "ctest --show-only failed"
"$EXPT_PYTHON" - "$work/tests.json" "$EXPT_BINARY_DIR" <<'PY' || die "the real registration is incomplete or not strict"
import json, os, subprocess, sys
tests = json.load(open(sys.argv[1]))["tests"]
names = {t["name"] for t in tests}
tests_dir = os.path.join(sys.argv[2], "tests")
executables = {c for t in tests for c in (t.get("command") or [])
               if os.path.dirname(c) == tests_dir and os.path.basename(c).startswith("test_")}
mpi_env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
discovered = 0
for exe in sorted(executables):
    run = subprocess.run([exe, "no such test case"], capture_output=True, text=True, env=mpi_env, timeout=120)
    assert run.returncode != 0, f"{exe} passes a spec that matches nothing (not the strict main)"
    folder = os.path.basename(exe)[len("test_"):]
    if folder == "mpi":
        continue  # run whole under mpirun, one entry per rank count
    listed = subprocess.run([exe, "--list-test-names-only"], capture_output=True, text=True).stdout
    for case in filter(None, listed.splitlines()):
        if case.startswith('"#') and case.endswith('"'):
            case = case[1:-1]
        assert f"{folder}: {case}" in names, f"{exe}: test case {case!r} has no ctest entry"
        discovered += 1
assert len(executables) >= 9 and discovered > 100, (sorted(executables), discovered)
print(f"{len(executables)} test executables strict; all {discovered} test cases of the per-folder ones registered")
PY
