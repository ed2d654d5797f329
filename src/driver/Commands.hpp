#ifndef RINGATTN_DRIVER_COMMANDS_HPP
#define RINGATTN_DRIVER_COMMANDS_HPP

// The subcommands of `ringattn`. main_entry() parses the command line and
// the deck, then calls one of these. run and plan are called inside the
// runtime (MPI_Init when built with MPI, then Kokkos::initialize); validate
// runs without it.
//
// Exit codes (docs/SPEC.md section 4): 0 ok, 2 bad input, 3 verification failed, 1 other.
// A DeckError or UsageError escaping a command is reported as exit 2, any
// other exception as 1 (see main_driver.cpp).

#include "CommandLine.hpp"
#include "Deck.hpp"

#include <iosfwd>

namespace ringattn::driver {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_verification_failed = 3;

/// `ringattn run`: cfg is the loaded deck (with its sweep, if any).
int run_command(const RunConfig &cfg, const CommandLine &cl);
/// `ringattn plan`: cl.memory_bytes holds --memory when given.
int plan_command(const RunConfig &cfg, const CommandLine &cl);
/// `ringattn validate`: loads the deck, checks the input files' headers,
/// prints the effective configuration to `out`; errors to `err`. 0 or 2.
int validate_command(const CommandLine &cl, std::ostream &out, std::ostream &err);

} // namespace ringattn::driver

#endif
