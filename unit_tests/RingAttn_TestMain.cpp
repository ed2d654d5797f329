// Test main: MPI_Init -> Kokkos::initialize -> Catch session ->
// Kokkos::finalize -> MPI_Finalize. Under mpirun every rank runs the session;
// the exit code is the worst over the ranks.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <RingAttn_Config.hpp>

#include <Kokkos_Core.hpp>
#ifdef RINGATTN_ENABLE_MPI
#include <mpi.h>
#endif

int main(int argc, char *argv[]) {
#ifdef RINGATTN_ENABLE_MPI
  MPI_Init(&argc, &argv);
#endif
  int result = 0;
  Kokkos::initialize(argc, argv);
  {
    Catch::Session session;
    // Kokkos consumed its --kokkos-* flags; hand Catch the rest.
    std::vector<char *> args;
    for (int i = 0; i < argc; ++i)
      if (std::string(argv[i]).rfind("--kokkos-", 0) != 0) args.push_back(argv[i]);
    result = session.applyCommandLine(int(args.size()), args.data());
    if (result == 0) result = session.run();
  }
  Kokkos::finalize();
#ifdef RINGATTN_ENABLE_MPI
  int worst = 0;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  result = worst;
#endif
  return result;
}
