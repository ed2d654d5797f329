#ifndef RINGATTN_DRIVER_COMMANDLINE_HPP
#define RINGATTN_DRIVER_COMMANDLINE_HPP

// The `ringattn` command line (docs/SPEC.md section 4):
//   ringattn run DECK [--set KEY=VALUE]... [--quiet]
//   ringattn validate DECK [--set KEY=VALUE]...
//   ringattn plan DECK [--memory SIZE] [--set KEY=VALUE]...
//   ringattn --help | -h | help [COMMAND]
//   ringattn --version

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn::driver {

/// Bad command-line usage (exit code 2).
class UsageError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

enum class Command { run, validate, plan, help, version };

struct CommandLine {
  Command command = Command::help;
  std::string deck;                          // run, validate, plan
  std::vector<std::string> set_overrides;    // "KEY=VALUE", in order
  bool quiet = false;                        // --quiet / -q: no progress output
  std::optional<std::uint64_t> memory_bytes; // plan --memory SIZE
  /// help: the command asked about ("" for the general help).
  std::string help_topic;
  /// --kokkos-* arguments, left for Kokkos::initialize (run and plan).
  std::vector<std::string> kokkos_args;
};

/// Parses argv (argv[0] is the program). Throws UsageError.
CommandLine parse_command_line(int argc, const char *const *argv);
CommandLine parse_command_line(const std::vector<std::string> &args); // without argv[0]

/// "16GiB", "512MB", "1.5 GiB", "1e9", "4096" -> bytes. Units: B, kB/KB, MB,
/// GB, TB, PB (powers of 1000); KiB, MiB, GiB, TiB, PiB and K, M, G, T, P
/// (powers of 1024); case-insensitive. Throws UsageError on garbage, on
/// sizes <= 0 and on sizes beyond 2^63 bytes.
std::uint64_t parse_memory_size(const std::string &text);

/// Help text: the overview (topic "") or one command's.
std::string usage_text(const std::string &topic = "");
/// "ringattn 0.1.0 (Kokkos 3.4.1, MPI on, BLAS on)".
std::string version_text();

} // namespace ringattn::driver

#endif
