// Catch2 under mpirun: MPI is initialised around the whole session, every rank runs every test
// case, and the run fails when any rank fails. Test cases must use CHECK (never REQUIRE) around
// collectives, so that a failing rank still takes part in every later collective instead of
// leaving the others waiting.
#define CATCH_CONFIG_RUNNER
#include <mpi.h>

#include <catch2/catch.hpp>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Catch::Session session;
  // Strict as tests/catch_main.cpp: no matching test case, or a test case without assertions, fails.
  session.configData().warnings =
      static_cast<Catch::WarnAbout::What>(Catch::WarnAbout::NoAssertions | Catch::WarnAbout::NoTests);
  if (rank != 0) session.configData().showSuccessfulTests = false;
  int failed = session.run(argc, argv);
  // Every rank learns whether any failed, so mpirun's exit code does not depend on which rank.
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return failed != 0 ? 1 : 0;
}
