// Planted test cases for tests/scripts/catch_registration.sh: names that Catch2 2.13's own
// registration (catch_discover_tests) splits or mis-escapes, and a test case that asserts nothing.
// Never registered by tests/CMakeLists.txt: the script registers them in a scratch ctest tree with
// tests/cmake/catch_add_tests.cmake and checks that each named case runs exactly itself and that
// the empty one fails. (These names deliberately break the ';' rule that test_names.sh enforces
// on the real tests.)
#include <catch2/catch.hpp>

TEST_CASE("planted; a name with a semicolon", "[harness]") { CHECK(6 * 7 == 42); }

TEST_CASE("planted, comma [bracketed] \"quoted\" back\\slash ~tilde *star", "[harness]") { CHECK(6 * 7 == 42); }

TEST_CASE("#planted name that starts with a hash", "[harness]") { CHECK(6 * 7 == 42); }

// A shorter name that the one above contains: an entry must run its own case, not both.
TEST_CASE("planted", "[harness]") { CHECK(6 * 7 == 42); }

TEST_CASE("planted: no assertions", "[harness]") {
  // Runs without checking anything: --warn NoAssertions must turn this into a failure.
  volatile int unused = 42;
  (void)unused;
}
