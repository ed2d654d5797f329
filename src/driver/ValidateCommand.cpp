// `ringattn validate DECK`: check the deck (and the headers of its .npy
// inputs) and print the effective configuration. No Kokkos, no MPI.
#include "Commands.hpp"

#include <ostream>

namespace ringattn::driver {

int validate_command(const CommandLine &cl, std::ostream &out, std::ostream &err) {
  try {
    const RunConfig cfg = load_deck(cl.deck, cl.set_overrides);
    check_build_supports(cfg); // e.g. mode mpi in a build without MPI
    const std::size_t points = sweep_size(cfg);
    if (cfg.sweep.empty())
      check_input_files(cfg);
    else
      for (const RunConfig &point : expand_sweep(cfg)) check_input_files(point);
    out << "# effective configuration of " << cl.deck;
    if (!cfg.sweep.empty()) out << " (a sweep of " << points << " points)";
    out << "\n" << describe(cfg);
    return exit_ok;
  } catch (const DeckError &e) {
    err << e.what() << "\n";
    return exit_bad_input;
  }
}

} // namespace ringattn::driver
