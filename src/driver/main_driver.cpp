// The `ringattn` program: command line -> deck -> command (SPEC section 4).
// validate and help run without the runtime; run and plan run inside it
// (Kokkos::initialize, preceded by MPI_Init only where MPI is wanted: when an
// MPI launcher started the process, or for run, when the deck has mode mpi).
// A simulated deck run outside a launcher never touches MPI, so concurrent
// runs share no MPI session directory.
#include "CommandLine.hpp"
#include "Commands.hpp"
#include "Deck.hpp"
#include "DriverComm.hpp"

#include <RingAttn_Config.hpp>

#include <Kokkos_Core.hpp>
#ifdef RINGATTN_ENABLE_MPI
#include <mpi.h>
#endif

#include <climits>
#include <exception>
#include <functional>
#include <iostream>
#include <new>
#include <string>
#include <vector>

namespace ringattn::driver {

namespace {

int world_rank() {
#ifdef RINGATTN_ENABLE_MPI
  int rank = 0;
  if (mpi_active()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
#else
  return 0;
#endif
}

int world_size() {
#ifdef RINGATTN_ENABLE_MPI
  int size = 1;
  if (mpi_active()) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
#else
  return 1;
#endif
}

/// Runs fn inside the runtime: MPI_Init (if use_mpi), then
/// Kokkos::initialize (which takes its --kokkos-* flags), fn, and finalize in
/// reverse order. An exception escaping fn is printed and gives exit code 2
/// (DeckError, UsageError) or 1; with several ranks it aborts the job, since
/// the other ranks may be waiting in a collective (agree on errors inside fn
/// to exit cleanly).
int with_runtime(bool use_mpi, int &argc, char **&argv, const std::function<int()> &fn) {
#ifdef RINGATTN_ENABLE_MPI
  if (use_mpi) MPI_Init(&argc, &argv);
#else
  (void)use_mpi;
#endif
  Kokkos::initialize(argc, argv);
  int rc = exit_failure;
  bool escaped = false;
  try {
    rc = fn();
  } catch (const DeckError &e) {
    std::cerr << e.what() << "\n";
    rc = exit_bad_input;
    escaped = true;
  } catch (const UsageError &e) {
    std::cerr << "ringattn: " << e.what() << "\n";
    rc = exit_bad_input;
    escaped = true;
  } catch (const std::bad_alloc &e) { // (Kokkos reports its own as std::runtime_error)
    std::cerr << "ringattn: error: out of memory: " << e.what()
              << "\n(the problem is too large for this machine; see ringattn plan DECK --memory "
                 "SIZE)\n";
    rc = exit_failure;
    escaped = true;
  } catch (const std::exception &e) {
    std::cerr << "ringattn: error: " << e.what() << "\n";
    rc = exit_failure;
    escaped = true;
  }
#ifdef RINGATTN_ENABLE_MPI
  if (escaped && use_mpi && world_size() > 1) MPI_Abort(MPI_COMM_WORLD, rc);
#else
  (void)escaped;
#endif
  Kokkos::finalize();
#ifdef RINGATTN_ENABLE_MPI
  if (use_mpi) MPI_Finalize();
#endif
  return rc;
}

/// Loads the deck on every rank; if it fails anywhere, the lowest failing
/// rank prints the error and every rank returns the worst exit code.
int load_deck_everywhere(const CommandLine &cl, RunConfig &cfg) {
  int rc = exit_ok;
  std::string error;
  try {
    cfg = load_deck(cl.deck, cl.set_overrides);
    check_build_supports(cfg);
  } catch (const DeckError &e) {
    rc = exit_bad_input;
    error = e.what();
  } catch (const std::exception &e) {
    rc = exit_failure;
    error = std::string("ringattn: error: ") + e.what();
  }
  int reporter = rc != exit_ok ? world_rank() : INT_MAX;
#ifdef RINGATTN_ENABLE_MPI
  if (mpi_active()) {
    int local[2] = {rc, -reporter}, agreed[2] = {0, 0};
    MPI_Allreduce(local, agreed, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    rc = agreed[0];
    reporter = -agreed[1];
  }
#endif
  if (rc != exit_ok && reporter == world_rank()) std::cerr << error << "\n";
  return rc;
}

} // namespace

int main_entry(int argc, char **argv) {
  CommandLine cl;
  try {
    cl = parse_command_line(argc, argv);
  } catch (const UsageError &e) {
    std::cerr << "ringattn: " << e.what() << "\n";
    return exit_bad_input;
  }

  switch (cl.command) {
  case Command::help:
    std::cout << usage_text(cl.help_topic);
    return exit_ok;
  case Command::version:
    std::cout << version_text() << "\n";
    return exit_ok;
  case Command::validate:
    return validate_command(cl, std::cout, std::cerr);
  case Command::run:
  case Command::plan:
    break;
  }
  const bool run = cl.command == Command::run;
#ifndef RINGATTN_ENABLE_MPI
  // Every process would run the whole deck alone, each writing the same files.
  if (launcher_world_size() > 1) {
    std::cerr << "ringattn: error: started by an MPI launcher as " << launcher_world_size()
              << " processes, but this ringattn was built without MPI (RingAttn_ENABLE_MPI=OFF); "
                 "run it as one process without mpirun, or rebuild with "
                 "-DRingAttn_ENABLE_MPI=ON\n";
    return exit_bad_input;
  }
#endif
  // Under a launcher every rank initializes MPI and the deck is loaded and
  // agreed on inside the runtime. Outside one, the deck is read first and MPI
  // is initialized (as a singleton) only for a run that has mode mpi.
  bool use_mpi = false;
#ifdef RINGATTN_ENABLE_MPI
  use_mpi = launched_by_mpi_launcher();
#endif
  bool loaded = false;
  RunConfig cfg;
  if (!use_mpi) {
    try {
      cfg = load_deck(cl.deck, cl.set_overrides);
      check_build_supports(cfg);
    } catch (const DeckError &e) {
      std::cerr << e.what() << "\n";
      return exit_bad_input;
    } catch (const std::exception &e) {
      std::cerr << "ringattn: error: " << e.what() << "\n";
      return exit_failure;
    }
    loaded = true;
#ifdef RINGATTN_ENABLE_MPI
    use_mpi = run && needs_mpi(cfg);
#endif
  }
  // --quiet also silences Kokkos' start-up advice (it prints to stdout).
  std::vector<char *> args(argv, argv + argc);
  static char disable_warnings[] = "--kokkos-disable-warnings";
  if (cl.quiet) args.push_back(disable_warnings);
  args.push_back(nullptr);
  int runtime_argc = int(args.size()) - 1;
  char **runtime_argv = args.data();
  return with_runtime(use_mpi, runtime_argc, runtime_argv, [&]() -> int {
    if (!loaded)
      if (const int rc = load_deck_everywhere(cl, cfg); rc != exit_ok) return rc;
    return run ? run_command(cfg, cl) : plan_command(cfg, cl);
  });
}

} // namespace ringattn::driver
