// The input deck (docs/SPEC.md sections 4 and 5): every malformed deck is rejected
// with file:line:col, the dotted key, what was expected and what was found;
// valid decks get every default filled in.
#include <CommandLine.hpp>
#include <Commands.hpp>
#include <Deck.hpp>

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace ringattn::driver;

namespace {
/// "1, 1, ..., 1": n ones, for list-length cases.
std::string ones(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += i ? ", 1" : "1";
  return s;
}

/// A fresh folder for one test, removed afterwards.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string &name) {
    path =
        fs::temp_directory_path() / ("ringattn_tstDeck_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  /// Writes `text` to `name` in the folder; returns its path.
  std::string write(const std::string &name, const std::string &text) const {
    const fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

std::string load_error(const std::string &deck, const std::vector<std::string> &sets = {}) {
  try {
    load_deck(deck, sets);
  } catch (const DeckError &e) {
    return e.what();
  }
  return "(no error)";
}

/// A valid problem section, one key a line (lines 1-4), for the cases below.
const std::string P = "problem:\n  seq_len: 256\n  heads: 4\n  head_dim: 16\n";

struct BadDeck {
  const char *name;
  std::string yaml;
  std::vector<std::string> sets;
  const char *expected; // a substring of the message: location, key, expected, found
};

// clang-format off
const std::vector<BadDeck> bad_decks = {
  // -- malformed YAML and structure
  {"nested too deeply (yaml-cpp says only \"bad file\")", "problem: " + std::string(5000, '['), {},
   "deck.yaml:1:1: malformed YAML: nested too deeply (the parser's limit is"},
  {"unclosed flow map", "problem: {seq_len: 256, heads: 4, head_dim: 16\nattention: {kind: dense}\n", {},
   "deck.yaml:2:10: malformed YAML: end of map flow not found"},
  {"bad indentation", "problem:\n  seq_len: 256\n heads: 4\n", {},
   "deck.yaml:3:2: malformed YAML: end of map not found"},
  {"tab indentation", "problem:\n\tseq_len: 4\n", {},
   "deck.yaml:2:9: malformed YAML: illegal map value; line 2 is indented with a tab (YAML needs spaces)"},
  {"top level is a list", "- 1\n- 2\n", {},
   "deck.yaml:1:1: (top level): expected a map of sections (problem, attention, ring"},
  {"section is a scalar", "problem: 5\n", {},
   "deck.yaml:1:10: problem: expected a map of keys, got \"5\""},
  {"empty file", "", {},
   "deck.yaml:1:1: problem: required section is missing (it needs at least seq_len, heads and head_dim)"},
  {"duplicate key", P + "  heads: 8\n", {},
   "deck.yaml:5:3: problem.heads: duplicate key (first at line 3)"},
  // -- unknown keys, with suggestions
  {"unknown key", "problem:\n  seq_lenn: 256\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:2:3: problem.seq_lenn: unknown key; did you mean 'seq_len'?"},
  {"unknown section", P + "benchmarks: {repeats: 2}\n", {},
   "deck.yaml:5:1: benchmarks: unknown key; did you mean 'benchmark'?"},
  {"key in the wrong section", P + "attention: {seq_len: 5}\n", {},
   "deck.yaml:5:13: attention.seq_len: unknown key; did you mean 'problem.seq_len'?"},
  {"unknown key far from any", P + "output: {colour: red}\n", {},
   "deck.yaml:5:10: output.colour: unknown key; valid keys of output: results, o, lse, dq, dk, dv, csv"},
  // -- problem: types and ranges
  {"seq_len not a number", "problem: {seq_len: abc, heads: 4, head_dim: 16}\n", {},
   "deck.yaml:1:20: problem.seq_len: expected an integer >= 1, got \"abc\""},
  {"seq_len zero", "problem: {seq_len: 0, heads: 4, head_dim: 16}\n", {},
   "deck.yaml:1:20: problem.seq_len: expected an integer >= 1, got 0"},
  {"seq_len negative", "problem:\n  seq_len: -5\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:2:12: problem.seq_len: expected an integer >= 1, got -5"},
  {"seq_len fractional", "problem:\n  seq_len: 12.5\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:2:12: problem.seq_len: expected an integer >= 1, got \"12.5\""},
  {"seq_len beyond 64 bits", "problem:\n  seq_len: 99999999999999999999\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:2:12: problem.seq_len: expected an integer >= 1, got 99999999999999999999 (out of range)"},
  {"seq_len a list", "problem:\n  seq_len: [1, 2]\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:2:12: problem.seq_len: expected an integer >= 1, got a list"},
  {"seq_len empty", "problem:\n  seq_len:\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:2:3: problem.seq_len: expected an integer >= 1, got nothing"},
  {"seq_len missing", "problem:\n  heads: 4\n  head_dim: 16\n", {},
   "deck.yaml:1:1: problem.seq_len: required key is missing (expected an integer >= 1)"},
  {"heads beyond int", "problem:\n  seq_len: 256\n  heads: 3000000000\n  head_dim: 16\n", {},
   "deck.yaml:3:10: problem.heads: expected an integer in [1, 2147483647], got 3000000000"},
  {"head_dim zero", "problem:\n  seq_len: 256\n  heads: 4\n  head_dim: 0\n", {},
   "deck.yaml:4:13: problem.head_dim: expected an integer in [1, 65536], got 0"},
  {"head_dim beyond the kernel's tiles", "problem:\n  seq_len: 256\n  heads: 4\n  head_dim: 65537\n", {},
   "deck.yaml:4:13: problem.head_dim: expected an integer in [1, 65536], got 65537"},
  {"kv_heads does not divide heads", P + "  kv_heads: 3\n", {},
   "deck.yaml:5:13: problem.kv_heads: expected a divisor of problem.heads (4), got 3"},
  {"kv_heads above heads", P + "  kv_heads: 8\n", {},
   "deck.yaml:5:13: problem.kv_heads: expected a divisor of problem.heads (4), got 8"},
  {"B*N*H*D overflows 64 bits", "problem:\n  seq_len: 4611686018427387904\n  heads: 8\n  head_dim: 64\n", {},
   "deck.yaml:2:12: problem.seq_len: batch*seq_len*heads*head_dim = 1*4611686018427387904*8*64 float32 values"},
  {"B*N*H*D beyond 2^62 bytes", "problem:\n  seq_len: 1099511627776\n  heads: 2048\n  head_dim: 513\n", {},
   "deck.yaml:2:12: problem.seq_len: batch*seq_len*heads*head_dim = 1*1099511627776*2048*513 float32 values (4.62e+18 bytes) is absurd, expected at most 2^62 bytes"},
  {"bad dtype", P + "  dtype: float8\n", {},
   "deck.yaml:5:10: problem.dtype: expected one of float32 | float64 | bfloat16 | float16, got \"float8\"; did you mean 'float32'?"},
  {"bad 16-bit dtype", P + "  dtype: bf16\n", {},
   "deck.yaml:5:10: problem.dtype: expected one of float32 | float64 | bfloat16 | float16, got \"bf16\""},
  // -- attention
  {"bad kind", P + "attention:\n  kind: dilate\n", {},
   "deck.yaml:6:9: attention.kind: expected one of dense | dilated, got \"dilate\"; did you mean 'dilated'?"},
  {"dilated without segments", P + "attention:\n  kind: dilated\n", {},
   "deck.yaml:5:1: attention.segment_lengths: required when kind is dilated"},
  {"dilated without rates", P + "attention:\n  kind: dilated\n  segment_lengths: [16, 32, 64]\n", {},
   "deck.yaml:5:1: attention.dilation_rates: required when kind is dilated"},
  {"fewer rates than segments", P + "attention:\n  kind: dilated\n  segment_lengths: [16, 32, 64]\n  dilation_rates: [1, 2]\n", {},
   "deck.yaml:8:19: attention.dilation_rates: expected 3 values (one per segment length), got 2"},
  {"rate above segment length", P + "attention:\n  kind: dilated\n  segment_lengths: [16, 32, 64]\n  dilation_rates: [1, 64, 4]\n", {},
   "deck.yaml:8:23: attention.dilation_rates[1]: expected an integer in [1, 32] (a rate is at most its segment length, segment_lengths[1] = 32), got 64"},
  {"rate zero", P + "attention:\n  kind: dilated\n  segment_lengths: [16, 32, 64]\n  dilation_rates: [0, 2, 4]\n", {},
   "deck.yaml:8:20: attention.dilation_rates[0]: expected an integer >= 1, got 0"},
  {"segment length zero", P + "attention:\n  kind: dilated\n  segment_lengths: [16, 32, 0]\n  dilation_rates: [1, 2, 4]\n", {},
   "deck.yaml:7:29: attention.segment_lengths[2]: expected an integer >= 1, got 0"},
  {"segments not a list", P + "attention:\n  kind: dilated\n  segment_lengths: 512\n  dilation_rates: [1]\n", {},
   "deck.yaml:7:20: attention.segment_lengths: expected a list of integers such as [2048, 4096], got \"512\""},
  {"too many branches", P + "attention:\n  kind: dilated\n  segment_lengths: [" + ones(65) + "]\n", {},
   "deck.yaml:7:20: attention.segment_lengths: expected 1 to 64 values, got 65"},
  {"head_groups with fewer heads than branches", "problem: {seq_len: 256, heads: 2, head_dim: 16}\nattention:\n  kind: dilated\n  segment_lengths: [16, 32, 64]\n  dilation_rates: [1, 2, 4]\n  mixing: head_groups\n", {},
   "deck.yaml:6:11: attention.mixing: head_groups needs problem.heads >= the number of branches (3), got 2 heads"},
  {"segments with dense", P + "attention:\n  kind: dense\n  segment_lengths: [16]\n", {},
   "deck.yaml:7:20: attention.segment_lengths: only used with attention.kind: dilated, but kind is dense"},
  {"bad mixing", P + "attention:\n  mixing: mix\n", {},
   "deck.yaml:6:11: attention.mixing: expected one of mixture | head_groups, got \"mix\""},
  {"causal not a bool", P + "attention:\n  causal: maybe\n", {},
   "deck.yaml:6:11: attention.causal: expected true or false, got \"maybe\""},
  {"infinite scale", P + "attention:\n  scale: .inf\n", {},
   "deck.yaml:6:10: attention.scale: expected auto or a finite number, got \".inf\""},
  {"nan scale", P + "attention:\n  scale: .nan\n", {},
   "deck.yaml:6:10: attention.scale: expected auto or a finite number, got \".nan\""},
  // -- ring
  {"bad ring mode", P + "ring: {mode: mpii}\n", {},
   "deck.yaml:5:14: ring.mode: expected one of mpi | simulated, got \"mpii\"; did you mean 'mpi'?"},
  {"ring size zero", P + "ring: {size: 0}\n", {},
   "deck.yaml:5:14: ring.size: expected an integer in [1, 2147483647], got 0"},
  {"bad partition", P + "ring: {partition: zig-zag}\n", {},
   "deck.yaml:5:19: ring.partition: expected one of contiguous | zigzag, got \"zig-zag\"; did you mean 'zigzag'?"},
  {"overlap not a bool", P + "ring: {overlap: 2}\n", {},
   "deck.yaml:5:17: ring.overlap: expected true or false, got \"2\""},
  // -- input
  {"npy without q", P + "input: {source: npy, k: k.npy, v: v.npy}\n", {},
   "deck.yaml:5:1: input.q: required when source is npy"},
  {"q with random source", P + "input: {q: q.npy}\n", {},
   "deck.yaml:5:12: input.q: only used with input.source: npy, but source is random"},
  {"bad source", P + "input: {source: file}\n", {},
   "deck.yaml:5:17: input.source: expected one of random | npy, got \"file\""},
  {"negative seed", P + "input: {seed: -1}\n", {},
   "deck.yaml:5:15: input.seed: expected an integer in [0, 18446744073709551615], got \"-1\""},
  {"check_finite not a bool", P + "input: {check_finite: maybe}\n", {},
   "deck.yaml:5:23: input.check_finite: expected true or false, got \"maybe\""},
  // -- verify, benchmark
  {"zero tolerance", P + "verify: {tolerance: 0}\n", {},
   "deck.yaml:5:21: verify.tolerance: expected a positive finite number, got 0"},
  {"tolerance not a number", P + "verify: {tolerance: small}\n", {},
   "deck.yaml:5:21: verify.tolerance: expected a positive finite number, got \"small\""},
  {"negative rows", P + "verify: {rows: -1}\n", {},
   "deck.yaml:5:16: verify.rows: expected an integer >= 0, got -1"},
  {"verify enabled not a bool", P + "verify: {enabled: [true]}\n", {},
   "deck.yaml:5:19: verify.enabled: expected true or false, got a list"},
  {"zero repeats", P + "benchmark: {repeats: 0}\n", {},
   "deck.yaml:5:22: benchmark.repeats: expected an integer in [1, 1000000], got 0"},
  {"negative warmup", P + "benchmark: {warmup: -1}\n", {},
   "deck.yaml:5:21: benchmark.warmup: expected an integer in [0, 1000000], got -1"},
  // -- output
  {"o and lse the same file", P + "output: {o: x.npy, lse: x.npy}\n", {},
   "deck.yaml:5:25: output.lse: the same file as output.o"},
  {"output over an input", P + "input: {source: npy, q: q.npy, k: k.npy, v: v.npy}\noutput: {o: q.npy}\n", {},
   "deck.yaml:6:13: output.o: the same file as input.q"},
  {"empty results path", P + "output: {results: ''}\n", {},
   "deck.yaml:5:19: output.results: expected a file path, got \"\""},
  // -- sweep
  {"unknown sweep key", P + "sweep: {problem.seq_lenn: [64]}\n", {},
   "deck.yaml:5:9: sweep.problem.seq_lenn: unknown key; did you mean 'sweep.problem.seq_len'?"},
  {"sweep axis not a list", P + "sweep: {ring.size: 4}\n", {},
   "deck.yaml:5:20: sweep.ring.size: expected a non-empty list of values, got \"4\""},
  {"sweep of an output path", P + "sweep: {output.o: [a.npy]}\n", {},
   "deck.yaml:5:9: sweep.output.o: output paths cannot be swept"},
  {"bad sweep value", P + "sweep:\n  problem.seq_len: [64, 0]\n", {},
   "deck.yaml:6:25: problem.seq_len: expected an integer >= 1, got 0 (at sweep point problem.seq_len=0)"},
  {"bad sweep combination", P + "sweep:\n  problem.kv_heads: [1, 3]\n", {},
   "deck.yaml:6:25: problem.kv_heads: expected a divisor of problem.heads (4), got 3 (at sweep point problem.kv_heads=3)"},
  // -- --set
  {"--set unknown key", P, {"problem.seq_lenn=5"},
   "--set problem.seq_lenn=5: unknown key; did you mean 'problem.seq_len'?"},
  {"--set bad value", P, {"problem.seq_len=abc"},
   "--set problem.seq_len=abc: expected an integer >= 1, got \"abc\""},
  {"--set without a value", P, {"problem.seq_len"},
   "--set problem.seq_len: expected KEY=VALUE"},
  {"--set section only", P, {"problem=3"},
   "--set problem=3: expected a dotted key SECTION.KEY such as problem.batch"},
  {"--set bad list element", P, {"attention.kind=dilated", "attention.segment_lengths=[4,8,16]", "attention.dilation_rates=[1,0,4]"},
   "--set attention.dilation_rates=[1,0,4]: attention.dilation_rates[1]: expected an integer >= 1, got 0"},
  {"--set unparsable value", P, {"attention.segment_lengths=[1,2"},
   "--set attention.segment_lengths=[1,2: cannot parse the value as YAML"},
  {"--set breaks a cross-check", P, {"problem.kv_heads=3"},
   "--set problem.kv_heads=3: expected a divisor of problem.heads (4), got 3"},
  {"--set ring size not a number", P, {"ring.size=many"},
   "--set ring.size=many: expected an integer in [1, 2147483647], got \"many\""},
  {"--set unknown sweep axis", P, {"sweep.ring.sizes=[1,2]"},
   "--set sweep.ring.sizes=[1,2]: unknown key; did you mean 'sweep.ring.size'?"},
};
// clang-format on

} // namespace

TEST_CASE("deck: every malformed deck is rejected with location, key, expected and found",
          "[deck]") {
  REQUIRE(bad_decks.size() >= 30);
  TempDir tmp("bad");
  for (const BadDeck &c : bad_decks) {
    DYNAMIC_SECTION(c.name) {
      const std::string expected = c.expected;
      // Each expectation names a location: file:line:col or the --set argument.
      REQUIRE((expected.rfind("deck.yaml:", 0) == 0 || expected.rfind("--set ", 0) == 0));
      const std::string deck = tmp.write("deck.yaml", c.yaml);
      const std::string msg = load_error(deck, c.sets);
      CHECK_THAT(msg, Catch::Contains(expected));
      if (expected.rfind("deck.yaml:", 0) == 0) CHECK(msg.rfind(deck + ":", 0) == 0);
    }
  }
}

TEST_CASE("deck: missing or unreadable files", "[deck]") {
  TempDir tmp("files");
  CHECK_THAT(load_error((tmp.path / "nope.yaml").string()),
             Catch::EndsWith("nope.yaml: cannot read the deck: no such file"));
  CHECK_THAT(load_error(tmp.path.string()),
             Catch::Contains("cannot read the deck: it is a folder"));
}

TEST_CASE("deck: defaults are filled in", "[deck]") {
  TempDir tmp("defaults");
  const std::string deck =
      tmp.write("deck.yaml", "problem: {seq_len: 100, heads: 6, head_dim: 8}\n");
  const RunConfig c = load_deck(deck);
  CHECK(c.deck_path == deck);
  CHECK(c.problem.batch == 1);
  CHECK(c.problem.seq_len == 100);
  CHECK(c.problem.heads == 6);
  CHECK(c.problem.kv_heads == 6);
  CHECK(c.problem.head_dim == 8);
  CHECK(c.problem.dtype == DType::float32);
  CHECK(c.attention.kind == AttentionKind::dense);
  CHECK(c.attention.segment_lengths.empty());
  CHECK(c.attention.mixing == ringattn::Mixing::mixture);
  CHECK_FALSE(c.attention.causal);
  CHECK_FALSE(c.attention.scale.has_value());
  CHECK(c.effective_scale() == Approx(1.0 / std::sqrt(8.0)));
  CHECK(c.ring.mode == RingMode::simulated);
  CHECK(c.ring.size == 1);
  CHECK(c.ring.partition == ringattn::PartitionKind::contiguous);
  CHECK(c.ring.overlap);
  CHECK(c.input.source == InputSource::random);
  CHECK(c.input.seed == 42);
  CHECK(c.input.check_finite);
  CHECK_FALSE(load_deck(deck, {"input.check_finite=false"}).input.check_finite);
  CHECK(describe(c).find("check_finite: true") != std::string::npos);
  CHECK(c.verify.enabled);
  CHECK(c.verify.rows == 64);
  CHECK(c.verify.tolerance == 1e-4);
  // 16-bit storage: the dtype's own default tolerance, unless the deck sets one.
  const RunConfig bf16 = load_deck(deck, {"problem.dtype=bfloat16"});
  CHECK(bf16.problem.dtype == DType::bfloat16);
  CHECK(bf16.verify.tolerance == 1e-2);
  CHECK(lse_tolerance(bf16.problem.dtype, bf16.verify.tolerance) == 1e-3);
  CHECK(load_deck(deck, {"problem.dtype=float16"}).verify.tolerance == 2e-3);
  CHECK(load_deck(deck, {"problem.dtype=float16", "verify.tolerance=5e-4"}).verify.tolerance ==
        5e-4);
  CHECK(lse_tolerance(DType::float32, 1e-2) == 1e-2); // float32, float64: one tolerance
  CHECK(c.benchmark.warmup == 1);
  CHECK(c.benchmark.repeats == 5);
  CHECK(c.output.results == (tmp.path / "results.yaml").string());
  CHECK(c.output.o.empty());
  CHECK(c.output.lse.empty());
  CHECK(c.output.csv.empty());
  CHECK(c.sweep.empty());
  CHECK(sweep_size(c) == 1);
  CHECK(c.q_shape() == std::vector<std::int64_t>{1, 100, 6, 8});
  CHECK(c.kv_shape() == std::vector<std::int64_t>{1, 100, 6, 8});
  CHECK(c.lse_shape() == std::vector<std::int64_t>{1, 6, 100});

  // Mode mpi: ring.size defaults to "the number of ranks".
  RunConfig m = load_deck(deck, {"ring.mode=mpi"});
  CHECK(m.ring.size == 0);
  resolve_ring_size(m, 4);
  CHECK(m.ring.size == 4);
  RunConfig m2 = load_deck(deck, {"ring.mode=mpi", "ring.size=2"});
  CHECK_THROWS_WITH(
      resolve_ring_size(m2, 4),
      Catch::Contains("--set ring.size=2: expected the number of MPI ranks (4), got 2"));
  // docs/SPEC.md section 3: every P, members beyond N simply own no rows.
  RunConfig m3 = load_deck(deck, {"ring.mode=mpi"});
  resolve_ring_size(m3, 128);
  CHECK(m3.ring.size == 128);
  // docs/SPEC.md section 5: the scale is auto or any number.
  CHECK(load_deck(deck, {"attention.scale=-0.5"}).effective_scale() == -0.5);
  CHECK(load_deck(deck, {"attention.scale=0"}).effective_scale() == 0.0);
}

TEST_CASE("deck: a full deck is read as written", "[deck]") {
  TempDir tmp("full");
  const std::string deck = tmp.write("sub/deck.yaml", R"(
problem:   {batch: 2, seq_len: 4096, heads: 8, kv_heads: 2, head_dim: 64, dtype: float64}
attention:
  kind: dilated
  segment_lengths: [512, 1024, 2048]
  dilation_rates: [1, 2, 4]
  mixing: head_groups
  causal: true
  scale: 0.125
ring:      {mode: mpi, size: 4, partition: zigzag, overlap: false}
input:     {source: npy, seed: 7, q: data/q.npy, k: /abs/k.npy, v: ../v.npy}
verify:    {enabled: false, rows: 0, tolerance: 2.0e-5}
benchmark: {warmup: 0, repeats: 10}
output:    {results: out/r.yaml, o: o.npy, lse: lse.npy}
)");
  const RunConfig c = load_deck(deck);
  const fs::path dir = tmp.path / "sub";
  CHECK(c.problem.batch == 2);
  CHECK(c.problem.kv_heads == 2);
  CHECK(c.problem.dtype == DType::float64);
  CHECK(c.attention.kind == AttentionKind::dilated);
  CHECK(c.attention.segment_lengths == std::vector<std::int64_t>{512, 1024, 2048});
  CHECK(c.attention.dilation_rates == std::vector<std::int64_t>{1, 2, 4});
  CHECK(c.attention.mixing == ringattn::Mixing::head_groups);
  CHECK(c.attention.causal);
  CHECK(c.effective_scale() == 0.125);
  CHECK(c.ring.mode == RingMode::mpi);
  CHECK(c.ring.size == 4);
  CHECK(c.ring.partition == ringattn::PartitionKind::zigzag);
  CHECK_FALSE(c.ring.overlap);
  CHECK(c.input.seed == 7);
  // Relative paths are resolved against the deck's folder (docs/SPEC.md section 5).
  CHECK(c.input.q == (dir / "data/q.npy").string());
  CHECK(c.input.k == "/abs/k.npy");
  CHECK(c.input.v == (tmp.path / "v.npy").string());
  CHECK_FALSE(c.verify.enabled);
  CHECK(c.verify.rows == 0);
  CHECK(c.verify.tolerance == 2.0e-5);
  CHECK(c.benchmark.warmup == 0);
  CHECK(c.benchmark.repeats == 10);
  CHECK(c.output.results == (dir / "out/r.yaml").string());
  CHECK(c.output.o == (dir / "o.npy").string());
  CHECK(c.output.lse == (dir / "lse.npy").string());

  const ringattn::Pattern p = make_pattern(c);
  CHECK(p.num_branches == 3);
  CHECK(p.heads == 8);
  CHECK(p.kv_heads == 2);
  CHECK(p.causal);
  CHECK(p.mixing == ringattn::Mixing::head_groups);

  // Locations for errors found later (e.g. by the run command).
  CHECK(c.where("input.q") == deck + ":11:38: input.q");
  CHECK(c.where("problem.dtype") == deck + ":2:82: problem.dtype");
  CHECK(c.where("problem.batch") == deck + ":2:20: problem.batch");
  CHECK(c.where("verify.enabled") == deck + ":12:22: verify.enabled");
}

TEST_CASE("deck: --set overrides the file", "[deck]") {
  TempDir tmp("set");
  const std::string deck = tmp.write("deck.yaml", P);
  const RunConfig c = load_deck(
      deck, {"problem.seq_len=1e4", "attention.kind=dilated", "attention.segment_lengths=[8, 16]",
             "attention.dilation_rates=[1,2]", "attention.causal=true", "attention.scale=0.5",
             "ring.size=4", "ring.partition=zigzag", "input.seed=18446744073709551615",
             "output.o=out/o.npy", "output.lse=", "ring.size=8"});
  CHECK(c.problem.seq_len == 10000);
  CHECK(c.attention.kind == AttentionKind::dilated);
  CHECK(c.attention.segment_lengths == std::vector<std::int64_t>{8, 16});
  CHECK(c.attention.dilation_rates == std::vector<std::int64_t>{1, 2});
  CHECK(c.attention.causal);
  CHECK(c.attention.scale == 0.5);
  CHECK(c.ring.size == 8); // the last --set of a key wins
  CHECK(c.ring.partition == ringattn::PartitionKind::zigzag);
  CHECK(c.input.seed == 18446744073709551615ull);
  // A path given by --set is relative to the current folder, not the deck's.
  CHECK(c.output.o == "out/o.npy");
  CHECK(c.output.lse.empty());
  CHECK(c.where("problem.seq_len") == "--set problem.seq_len=1e4");
  CHECK(c.where("problem.heads") == deck + ":3:10: problem.heads");
  // A key that took its default is placed at its section, or the file.
  CHECK(c.where("problem.batch") == deck + ":1:1: problem.batch");
  CHECK(c.where("verify.rows") == deck + ": verify.rows");
}

TEST_CASE("deck: sweeps expand to their cartesian product", "[deck]") {
  TempDir tmp("sweep");
  const std::string deck = tmp.write("deck.yaml", P + R"(attention:
  kind: dilated
  segment_lengths: [16, 32]
  dilation_rates: [1, 2]
sweep:
  problem.seq_len: [64, 128]
  ring.size: [1, 2, 4]
)");
  const RunConfig c = load_deck(deck);
  REQUIRE(c.sweep.size() == 2);
  CHECK(c.sweep[0].key == "problem.seq_len");
  CHECK(c.sweep[0].values == std::vector<std::string>{"64", "128"});
  CHECK(c.sweep[1].values == std::vector<std::string>{"1", "2", "4"});
  CHECK(c.output.csv == (tmp.path / "results.csv").string());
  REQUIRE(sweep_size(c) == 6);
  const SweepPoint p4 = sweep_point(c, 4);
  CHECK(p4 == SweepPoint{{"problem.seq_len", "128"}, {"ring.size", "2"}});

  const std::vector<RunConfig> points = expand_sweep(c);
  REQUIRE(points.size() == 6);
  const std::int64_t seq[] = {64, 64, 64, 128, 128, 128};
  const int ring[] = {1, 2, 4, 1, 2, 4};
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(points[i].problem.seq_len == seq[i]);
    CHECK(points[i].ring.size == ring[i]);
    CHECK(points[i].problem.heads == 4);
    CHECK(points[i].sweep.empty());
    CHECK(points[i].sweep_point == sweep_point(c, i));
    CHECK(points[i].output.csv == c.output.csv);
  }
  // A point value that breaks a rule is reported at the point.
  CHECK_THROWS_WITH(apply_sweep_point(c, {{"attention.dilation_rates", "[1, 64]"}}),
                    Catch::Contains("attention.dilation_rates[1]: expected an integer in [1, 32]"));

  // --set pins a swept key; --set sweep.KEY adds or replaces an axis.
  const RunConfig pinned = load_deck(deck, {"ring.size=2"});
  REQUIRE(pinned.sweep.size() == 1);
  CHECK(pinned.ring.size == 2);
  CHECK(sweep_size(pinned) == 2);
  const RunConfig more = load_deck(deck, {"sweep.attention.segment_lengths=[[16, 32], [8, 64]]"});
  REQUIRE(more.sweep.size() == 3);
  CHECK(more.sweep[2].values == std::vector<std::string>{"[16, 32]", "[8, 64]"});
  CHECK(sweep_size(more) == 12);
  CHECK(expand_sweep(more)[1].attention.segment_lengths == std::vector<std::int64_t>{8, 64});

  // The description holds the sweep and loads again.
  const RunConfig again = load_deck_string(describe(c), "described.yaml");
  CHECK(describe(again) == describe(c));
}

TEST_CASE("deck: the description is the effective config and loads again", "[deck]") {
  TempDir tmp("describe");
  const std::string deck = tmp.write(
      "deck.yaml", P + "attention: {scale: 0.1}\nring: {mode: mpi}\noutput: {o: o.npy}\n");
  const RunConfig c = load_deck(deck);
  const std::string text = describe(c);
  const YAML::Node y = YAML::Load(text);
  CHECK(y["problem"]["kv_heads"].as<int>() == 4);
  CHECK(y["problem"]["dtype"].as<std::string>() == "float32");
  CHECK(y["attention"]["kind"].as<std::string>() == "dense");
  CHECK(y["attention"]["scale"].as<std::string>() == "0.1");
  CHECK(y["ring"]["size"].as<int>() == 0);
  CHECK(y["verify"]["tolerance"].as<double>() == 1e-4);
  CHECK(y["output"]["o"].as<std::string>() == (tmp.path / "o.npy").string());
  CHECK(y["output"]["lse"].IsNull());
  const RunConfig again = load_deck_string(text, "described.yaml");
  CHECK(describe(again) == text);

  // emit_config nests the same map, e.g. as the results file's config section.
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "status" << YAML::Value << "ok";
  out << YAML::Key << "config" << YAML::Value;
  emit_config(out, c);
  out << YAML::EndMap;
  REQUIRE(out.good());
  CHECK(YAML::Load(out.c_str())["config"]["ring"]["mode"].as<std::string>() == "mpi");

  // A config built in code can be swept too.
  RunConfig code;
  code.problem.seq_len = 32;
  code.problem.heads = 2;
  code.problem.kv_heads = 1;
  code.problem.head_dim = 4;
  const RunConfig point = apply_sweep_point(code, {{"problem.seq_len", "64"}});
  CHECK(point.problem.seq_len == 64);
  CHECK(point.problem.kv_heads == 1);
}

TEST_CASE("deck: every golden deck loads and its inputs match", "[deck]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  int decks = 0;
  for (const auto &entry : fs::directory_iterator(golden)) {
    const fs::path deck = entry.path() / "deck.yaml";
    if (!fs::exists(deck)) continue;
    ++decks;
    INFO(deck.string());
    RunConfig c;
    REQUIRE_NOTHROW(c = load_deck(deck.string()));
    CHECK(c.input.source == InputSource::npy);
    CHECK(c.input.q == (entry.path() / "q.npy").string());
    CHECK_NOTHROW(check_input_files(c));
    CHECK_NOTHROW(make_pattern(c));
    CHECK(describe(load_deck_string(describe(c), "again.yaml")) == describe(c));
  }
  CHECK(decks == 12);

  // An input of the wrong shape is reported at its key.
  const fs::path one = golden / "dense_small" / "deck.yaml";
  const RunConfig c = load_deck(one.string(), {"problem.seq_len=38"});
  CHECK_THROWS_WITH(check_input_files(c),
                    Catch::Contains("deck.yaml:5:25: input.q: ") &&
                        Catch::Contains("q.npy: shape (1, 37, 2, 8) does not match the expected "
                                        "[B, N, H, D] = (1, 38, 2, 8)"));
}

TEST_CASE("deck: the quickstart deck", "[deck]") {
  const std::string deck = std::string(RINGATTN_INPUTS_DIR) + "/quickstart.yaml";
  const RunConfig c = load_deck(deck);
  CHECK(c.problem.seq_len == 8192);
  CHECK(c.problem.kv_heads == 2);
  CHECK(c.attention.kind == AttentionKind::dilated);
  CHECK(c.ring.size == 4);
  CHECK(c.verify.rows == 32);
  CHECK(c.benchmark.repeats == 3);
  CHECK(c.output.o == std::string(RINGATTN_INPUTS_DIR) + "/results/quickstart_o.npy");
}

TEST_CASE("cli: command lines", "[deck][cli]") {
  auto parse = [](std::vector<std::string> args) { return parse_command_line(args); };
  const CommandLine run = parse({"run", "d.yaml", "--set", "ring.size=2", "--set=problem.batch=3",
                                 "-q", "--kokkos-threads=2"});
  CHECK(run.command == Command::run);
  CHECK(run.deck == "d.yaml");
  CHECK(run.set_overrides == std::vector<std::string>{"ring.size=2", "problem.batch=3"});
  CHECK(run.quiet);
  CHECK(run.kokkos_args == std::vector<std::string>{"--kokkos-threads=2"});
  const CommandLine plan = parse({"plan", "--memory", "16GiB", "d.yaml"});
  CHECK(plan.command == Command::plan);
  CHECK(plan.memory_bytes == std::uint64_t(16) << 30);
  CHECK(parse({"--help"}).command == Command::help);
  CHECK(parse({"help", "plan"}).help_topic == "plan");
  CHECK(parse({"validate", "d.yaml", "-h"}).command == Command::help);
  CHECK(parse({"--version"}).command == Command::version);

  CHECK_THROWS_WITH(parse({}), Catch::Contains("missing command"));
  CHECK_THROWS_WITH(parse({"runn", "d.yaml"}),
                    Catch::Contains("unknown command 'runn'; did you mean 'run'?"));
  CHECK_THROWS_WITH(parse({"run"}), Catch::Contains("run: missing DECK"));
  CHECK_THROWS_WITH(parse({"run", "a.yaml", "b.yaml"}),
                    Catch::Contains("unexpected argument 'b.yaml'"));
  CHECK_THROWS_WITH(parse({"run", "d.yaml", "--sett", "x=1"}),
                    Catch::Contains("unknown option '--sett'; did you mean '--set'?"));
  CHECK_THROWS_WITH(parse({"run", "d.yaml", "--set"}), Catch::Contains("--set needs a value"));
  CHECK_THROWS_WITH(parse({"run", "d.yaml", "--set", "ring.size"}),
                    Catch::Contains("expected KEY=VALUE"));
  CHECK_THROWS_WITH(parse({"run", "d.yaml", "--memory", "1GB"}),
                    Catch::Contains("--memory is an option of 'plan'"));

  CHECK(parse_memory_size("512MB") == 512000000u);
  CHECK(parse_memory_size("1e9") == 1000000000u);
  CHECK(parse_memory_size("4096") == 4096u);
  CHECK(parse_memory_size("1.5 GiB") == std::uint64_t(3) << 29);
  CHECK(parse_memory_size("2t") == std::uint64_t(2) << 40);
  CHECK(parse_memory_size("64KiB") == 65536u);
  for (const char *bad : {"", "abc", "16XB", "-1GB", "0", "GiB", "1e30", "nan", "0x10", "inf"})
    CHECK_THROWS_AS(parse_memory_size(bad), UsageError);
  CHECK_THROWS_WITH(parse_memory_size("16XB"),
                    Catch::Contains("--memory 16XB: expected a size such as 16GiB, 512MB or 1e9"));
}

TEST_CASE("cli: validate prints the effective config or the error", "[deck][cli]") {
  TempDir tmp("validate");
  const std::string good = tmp.write("good.yaml", P);
  const std::string bad = tmp.write("bad.yaml", P + "ring: {size: 0}\n");
  std::ostringstream out, err;
  CHECK(validate_command(parse_command_line({"validate", good}), out, err) == exit_ok);
  CHECK(err.str().empty());
  CHECK_THAT(out.str(), Catch::Contains("kv_heads: 4") && Catch::Contains("repeats: 5"));
  std::ostringstream out2, err2;
  CHECK(validate_command(parse_command_line({"validate", bad}), out2, err2) == exit_bad_input);
  CHECK(out2.str().empty());
  CHECK(err2.str() == bad + ":5:14: ring.size: expected an integer in [1, 2147483647], got 0\n");
  std::ostringstream out3, err3;
  CHECK(validate_command(parse_command_line({"validate", good, "--set", "problem.heads=x"}), out3,
                         err3) == exit_bad_input);
  CHECK_THAT(err3.str(), Catch::StartsWith("--set problem.heads=x: expected an integer in [1, "));
}
