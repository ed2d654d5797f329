#include "CommandLine.hpp"

#include <RingAttn_Config.hpp>

#include <Kokkos_Macros.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace ringattn::driver {

namespace {

const char *const overview = R"(usage: ringattn COMMAND DECK [options]

Exact ring attention (dense or dilated) driven by a YAML input deck.

commands:
  run DECK        run the deck (under mpirun -np P for ring.mode mpi), write
                  the results file and, if asked, O and LSE as .npy
  validate DECK   check the deck and print the effective configuration
  plan DECK       print the memory model per ring member, communication
                  volume and FLOPs, and the longest sequence that fits
  help [COMMAND]  this text, or a command's
  --version       the version and the build's options

options:
  --set KEY=VALUE   override a deck key (dotted: problem.seq_len=65536,
                    ring.size=8, attention.segment_lengths=[512,1024]);
                    repeatable; relative paths are taken from the current
                    folder; sweep.KEY=[v1,v2] sets a sweep axis
  --quiet, -q       no progress output (errors still go to stderr)
  --memory SIZE     plan: memory per member, e.g. 16GiB, 512MB, 1e9
  --kokkos-*        passed to Kokkos (run, plan); the thread count is
                    --kokkos-num-threads=2 with Kokkos 4.x and later, but
                    --kokkos-threads=2 with Kokkos 3.x (--version names the
                    Kokkos of this build; 4.x ignores the 3.x flag, warning)

exit codes: 0 ok, 2 bad input, 3 verification failed, 1 other failure
)";

const char *const run_help =
    R"(usage: ringattn run DECK [--set KEY=VALUE]... [--quiet] [--kokkos-*...]

Runs the deck: generates or reads Q, K, V, computes attention on the ring,
verifies rows against a direct computation, times the repeats and writes the
results file (output.results) and, if given, output.o and output.lse.
For ring.mode mpi, start it under mpirun -np P.
Exit codes: 0 ok, 2 bad input, 3 verification failed, 1 other failure.
)";

const char *const validate_help = R"(usage: ringattn validate DECK [--set KEY=VALUE]...

Parses and checks the deck (and the headers of its .npy inputs), then prints
the effective configuration, every default filled in, as YAML.
Exit codes: 0 valid, 2 not.
)";

const char *const plan_help = R"(usage: ringattn plan DECK [--memory SIZE] [--set KEY=VALUE]...

Prints the memory model per ring member, the communication volume and the
FLOPs of the deck, and the longest sequence that fits SIZE bytes per member
for a range of ring sizes. SIZE: 16GiB, 512MB, 1.5TB, 1e9 (bytes), ...;
16GiB when not given. A model, not a measurement; sections:
  problem        the deck's N, B, H, Hkv, D, dtype, pattern, ring and tiling
  memory         buffer by buffer (Q, K, V, O, LSE, K/V blocks, tiles,
                 schedule) in bytes and KiB/MiB/GiB: for ring.mode simulated
                 the process, for mpi the largest member and the spread
  communication  K/V bytes a member sends over one ring pass (min, max,
                 total) beside a dense ring's, and hops made vs skipped
  work           (query, key) pairs the pattern keeps and 4*D FLOPs each,
                 in all and per member
  longest sequence that fits SIZE per member, for ring sizes 1, 2, 4, ... 64
                 (mode mpi, the deck's partition and shape; N a multiple of 64)
  claimed vs modelled: the claims that motivated the project (ring size 8:
                 131072 tokens in 0.23 GB, 16: 524288 in 0.71 GB, 32: 18.8M)
                 beside the model for the deck's shape
Mode mpi without ring.size plans for the ranks it runs on; rings of more
than 1024 members are evaluated on a sample of members (marked ~); the plan
takes rings of at most 65536 members. Under mpirun, rank 0 prints.
Exit codes: 0 ok, 2 bad input.
)";

std::size_t distance(const std::string &a, const std::string &b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0u : 1u)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(const std::string &word, const std::vector<std::string> &options) {
  std::string best;
  std::size_t best_d = 3;
  for (const std::string &o : options) {
    const std::size_t d = distance(word, o);
    if (d < best_d) best_d = d, best = o;
  }
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

const char *command_name(Command c) {
  switch (c) {
  case Command::run:
    return "run";
  case Command::validate:
    return "validate";
  case Command::plan:
    return "plan";
  case Command::help:
    return "help";
  case Command::version:
    return "version";
  }
  return "";
}

} // namespace

std::string usage_text(const std::string &topic) {
  if (topic == "run") return run_help;
  if (topic == "validate") return validate_help;
  if (topic == "plan") return plan_help;
  return overview;
}

std::string version_text() {
  std::string s = std::string("ringattn ") + RINGATTN_VERSION_STRING + " (Kokkos " +
                  std::to_string(KOKKOS_VERSION / 10000) + "." +
                  std::to_string(KOKKOS_VERSION / 100 % 100) + "." +
                  std::to_string(KOKKOS_VERSION % 100);
#ifdef RINGATTN_ENABLE_MPI
  s += ", MPI on";
#else
  s += ", MPI off";
#endif
#ifdef RINGATTN_ENABLE_BLAS
  s += ", BLAS on";
#else
  s += ", BLAS off";
#endif
  return s + ")";
}

std::uint64_t parse_memory_size(const std::string &text) {
  const std::string hint =
      "--memory " + text + ": expected a size such as 16GiB, 512MB or 1e9 (bytes)";
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const char *begin = text.c_str() + i;
  if (*begin == '\0' || *begin == '-' || *begin == '+') throw UsageError(hint);
  char *end = nullptr;
  const double value = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(value)) throw UsageError(hint);
  std::string unit;
  for (const char *p = end; *p; ++p)
    if (!std::isspace(static_cast<unsigned char>(*p)))
      unit += char(std::tolower(static_cast<unsigned char>(*p)));
  // strtod reads hex and inf/nan; only plain decimal numbers are sizes.
  for (const char *p = begin; p < end; ++p)
    if (!(std::isdigit(static_cast<unsigned char>(*p)) || *p == '.' || *p == 'e' || *p == 'E' ||
          *p == '+' || *p == '-'))
      throw UsageError(hint);

  double factor = 0;
  const struct {
    const char *name;
    double factor;
  } units[] = {{"", 1},
               {"b", 1},
               {"kb", 1e3},
               {"mb", 1e6},
               {"gb", 1e9},
               {"tb", 1e12},
               {"pb", 1e15},
               {"k", 1024.0},
               {"m", 1024.0 * 1024},
               {"g", 1024.0 * 1024 * 1024},
               {"t", 1024.0 * 1024 * 1024 * 1024},
               {"p", 1024.0 * 1024 * 1024 * 1024 * 1024},
               {"kib", 1024.0},
               {"mib", 1024.0 * 1024},
               {"gib", 1024.0 * 1024 * 1024},
               {"tib", 1024.0 * 1024 * 1024 * 1024},
               {"pib", 1024.0 * 1024 * 1024 * 1024 * 1024}};
  for (const auto &u : units)
    if (unit == u.name) factor = u.factor;
  if (factor == 0) throw UsageError(hint + "; unknown unit '" + std::string(end) + "'");
  const double bytes = std::floor(value * factor);
  if (!(bytes >= 1)) throw UsageError(hint + "; the size must be at least 1 byte");
  if (bytes >= 9223372036854775808.0) throw UsageError(hint + "; the size is too large");
  return static_cast<std::uint64_t>(bytes);
}

CommandLine parse_command_line(int argc, const char *const *argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_command_line(args);
}

CommandLine parse_command_line(const std::vector<std::string> &given) {
  CommandLine cl;
  const std::string hint = " (see 'ringattn --help')";
  // --quiet may also stand before the command: move it after.
  std::vector<std::string> args;
  std::size_t lead = 0;
  while (lead < given.size() && (given[lead] == "--quiet" || given[lead] == "-q")) ++lead;
  if (lead < given.size()) args.push_back(given[lead]);
  for (std::size_t i = 0; i < lead; ++i) args.push_back(given[i]);
  for (std::size_t i = lead + 1; i < given.size(); ++i) args.push_back(given[i]);
  if (args.empty()) throw UsageError("missing command" + hint);

  const std::string &first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    cl.command = Command::help;
    if (args.size() > 1) {
      const std::string &t = args[1];
      if (t != "run" && t != "validate" && t != "plan")
        throw UsageError("help: unknown command '" + t + "'" +
                         suggestion(t, {"run", "validate", "plan"}) + hint);
      cl.help_topic = t;
    }
    if (args.size() > 2) throw UsageError("help: unexpected argument '" + args[2] + "'" + hint);
    return cl;
  }
  if (first == "--version" || first == "version") {
    if (args.size() > 1)
      throw UsageError("--version: unexpected argument '" + args[1] + "'" + hint);
    cl.command = Command::version;
    return cl;
  }
  if (first == "run")
    cl.command = Command::run;
  else if (first == "validate")
    cl.command = Command::validate;
  else if (first == "plan")
    cl.command = Command::plan;
  else if (!first.empty() && first[0] == '-')
    throw UsageError("expected a command before '" + first + "'" +
                     suggestion(first, {"--help", "--version"}) + hint);
  else
    throw UsageError("unknown command '" + first + "'" +
                     suggestion(first, {"run", "validate", "plan", "help"}) + hint);

  const std::string cmd = command_name(cl.command);
  auto value_of = [&](std::size_t &i, const std::string &flag) -> std::string {
    const std::string &a = args[i];
    if (a.size() > flag.size() && a.compare(0, flag.size() + 1, flag + "=") == 0)
      return a.substr(flag.size() + 1);
    if (i + 1 >= args.size()) throw UsageError(cmd + ": " + flag + " needs a value" + hint);
    return args[++i];
  };
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (a == "--set" || a.rfind("--set=", 0) == 0) {
      const std::string kv = value_of(i, "--set");
      if (kv.find('=') == std::string::npos || kv[0] == '=')
        throw UsageError(cmd + ": --set " + kv +
                         ": expected KEY=VALUE, e.g. --set problem.seq_len=65536");
      cl.set_overrides.push_back(kv);
    } else if (a == "--memory" || a.rfind("--memory=", 0) == 0) {
      if (cl.command != Command::plan)
        throw UsageError(cmd + ": --memory is an option of 'plan'" + hint);
      cl.memory_bytes = parse_memory_size(value_of(i, "--memory"));
    } else if (a == "--quiet" || a == "-q") {
      cl.quiet = true;
    } else if (a == "--help" || a == "-h") {
      CommandLine help;
      help.command = Command::help;
      help.help_topic = cmd;
      return help;
    } else if (a.rfind("--kokkos-", 0) == 0) {
      cl.kokkos_args.push_back(a);
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      throw UsageError(cmd + ": unknown option '" + a + "'" +
                       suggestion(a, {"--set", "--quiet", "--memory", "--help"}) + hint);
    } else if (cl.deck.empty()) {
      cl.deck = a;
    } else {
      throw UsageError(cmd + ": unexpected argument '" + a + "' (the deck is '" + cl.deck +
                       "'; use --set KEY=VALUE to override keys)" + hint);
    }
  }
  if (cl.deck.empty()) throw UsageError(cmd + ": missing DECK (a YAML input deck)" + hint);
  return cl;
}

} // namespace ringattn::driver
