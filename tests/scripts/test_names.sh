#!/usr/bin/env bash
# Catch2 test names that ctest's registration would split: a ';' inside a name makes
# catch_discover_tests register fragments that match no test case, and each fragment then "passes"
# without running anything. Every TEST_CASE / SCENARIO / TEMPLATE_TEST_CASE name under tests/ must
# be free of ';'. (A negative control: the pattern finds a planted name.)
source "$(dirname "$0")/lib.sh"
pattern='(TEST_CASE|SCENARIO|TEMPLATE_TEST_CASE)\(\s*"[^"]*;'
printf 'TEST_CASE("planted; name", "[x]") {}\n' > "$work/planted.cpp"
grep -qE "$pattern" "$work/planted.cpp" || die "the pattern misses a planted name"
if bad=$(grep -rnE "$pattern" "$EXPT_SOURCE_DIR/tests" --include='*.cpp' --include='*.hpp'); then
  die "test names with ';' (ctest would run nothing for them):
$bad"
fi
echo "no test name contains ';'"
