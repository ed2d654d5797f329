// libFuzzer target: the input deck parser (docs/SPEC.md section 5) on arbitrary bytes.
//
// The input is the deck text; bytes after a first NUL are `--set`
// arguments, separated by NULs. A DeckError is the expected answer to a bad
// deck. Anything else is a bug: a crash, a sanitizer report, another
// exception type, a hang, or a valid deck whose description does not load
// back to the same configuration.
//
//   scripts/fuzz.sh [SECONDS]       builds and runs it (see docs/reliability.md)
#include <Deck.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace ringattn::driver;

namespace {
[[noreturn]] void bug(const char *what, const std::string &detail) {
  std::fprintf(stderr, "fuzz_deck: %s\n%s\n", what, detail.c_str());
  std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char *>(data), size);
  const std::size_t nul = bytes.find('\0');
  const std::string text = bytes.substr(0, nul);
  std::vector<std::string> sets;
  if (nul != std::string::npos) {
    std::size_t begin = nul + 1;
    while (begin <= bytes.size()) {
      const std::size_t end = std::min(bytes.find('\0', begin), bytes.size());
      sets.push_back(bytes.substr(begin, end - begin));
      begin = end + 1;
    }
  }
  RunConfig cfg;
  try {
    cfg = load_deck_string(text, "fuzz.yaml", sets, "/fuzz");
  } catch (const DeckError &) {
    return 0; // a bad deck, reported as such
  }
  // A valid deck: everything downstream of the parser must accept it.
  const std::string described = describe(cfg);
  try {
    const RunConfig again = load_deck_string(described, "described.yaml");
    if (describe(again) != described) bug("describe() does not round-trip", described);
    for (const RunConfig &point : expand_sweep(cfg)) {
      const ringattn::Pattern pattern = make_pattern(point);
      if (pattern.seq_len != point.problem.seq_len) bug("pattern seq_len", describe(point));
      (void)point.q_shape();
      (void)point.effective_scale();
      if (point.ring.mode == RingMode::mpi) {
        RunConfig mpi = point;
        try {
          resolve_ring_size(mpi, 2);
        } catch (const DeckError &) {
        }
      }
    }
  } catch (const DeckError &e) {
    bug("a valid deck's description or sweep point was rejected",
        std::string(e.what()) + "\n" + described);
  }
  return 0;
}
