#!/usr/bin/env bash
# Catch2 test names with ';': Catch2's own catch_discover_tests split them into fragments that
# matched no test case and "passed" without running anything. The registration that replaced it
# (tests/cmake/catch_add_tests.cmake, checked by catch_registration.sh) takes any name, but the rule
# stays so that names remain usable in ctest -R and in CMake lists: every TEST_CASE / SCENARIO /
# TEMPLATE_TEST_CASE name under tests/ must be free of ';'. (A negative control: the pattern finds a
# planted name.)
source "$(dirname "$0")/lib.sh"
pattern='(TEST_CASE|SCENARIO|TEMPLATE_TEST_CASE)\(\s*"[^"]*;'
printf 'TEST_CASE("planted; name", "[x]") {}\n' > "$work/planted.cpp"
grep -qE "$pattern" "$work/planted.cpp" || die "the pattern misses a planted name"
# tests/harness/ holds the registration's planted controls, whose names break this rule on purpose.
if bad=$(grep -rnE "$pattern" "$EXPT_SOURCE_DIR/tests" --include='*.cpp' --include='*.hpp' --exclude-dir=harness); then
  die "test names with ';' (ctest would run nothing for them):
$bad"
fi
echo "no test name contains ';'"
