// Catch2's main for every test executable, strict: a run whose test spec matches no test case, or
// a test case (or leaf section) that checks nothing, fails (decision 97). Catch2 2.13 exits 0 in
// both cases by default, and its command line takes only one --warn option, so both warnings are
// set here, for every run whatever starts it (ctest, a developer, a script).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int main(int argc, char** argv) {
  Catch::Session session;
  session.configData().warnings =
      static_cast<Catch::WarnAbout::What>(Catch::WarnAbout::NoAssertions | Catch::WarnAbout::NoTests);
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  return session.run();
}
