// The ringattn program end to end on the golden cases
// (unit_tests/data/golden): `run` writes O and LSE as .npy, which must equal the
// independent float64 answers within 2e-5, and the API's own result, for a
// single member and for simulated rings with either partition.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"

#include <CommandLine.hpp>
#include <Commands.hpp>
#include <Deck.hpp>
#include <Npy.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace ringattn;
using namespace ringattn::driver;
namespace fs = std::filesystem;

namespace {

std::vector<double> read_all(const std::string &path) {
  NpyReader reader(path);
  std::vector<double> x(std::size_t(reader.header().num_elements()));
  reader.read(0, std::int64_t(x.size()), x.data());
  return x;
}

const char *golden_cases[] = {
    "dense_causal",       "dense_gqa_causal",       "dense_mqa",
    "dense_small",        "dilated_head_groups",    "dilated_head_groups_uneven",
    "dilated_mixture",    "dilated_mixture_causal", "dilated_mixture_ragged",
    "dilated_one_branch", "dilated_r_equals_w",     "dilated_w_beyond_n"};

fs::path scratch_dir(const std::string &name) {
  const fs::path dir = fs::temp_directory_path() / ("ringattn_test_" + name);
  fs::create_directories(dir);
  return dir;
}

} // namespace

TEST_CASE("run: golden cases through the program match the float64 answers", "[run][golden]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  for (const char *name : golden_cases)
    for (const char *ring : {"ring.size=1", "ring.size=3", "ring.size=4"})
      for (const char *partition : {"ring.partition=contiguous", "ring.partition=zigzag"}) {
        INFO(name << " " << ring << " " << partition);
        const fs::path out = scratch_dir(name);
        const std::vector<std::string> sets = {ring,
                                               partition,
                                               "verify.enabled=true",
                                               "verify.rows=16",
                                               "verify.tolerance=2e-5",
                                               "output.o=" + (out / "o.npy").string(),
                                               "output.lse=" + (out / "lse.npy").string(),
                                               "output.results=" + (out / "results.yaml").string()};
        const RunConfig cfg = load_deck((golden / name / "deck.yaml").string(), sets);
        CommandLine cl;
        cl.command = Command::run;
        cl.quiet = true;
        REQUIRE(run_command(cfg, cl) == exit_ok);
        const auto o = read_all((out / "o.npy").string());
        const auto lse = read_all((out / "lse.npy").string());
        CHECK(test::max_abs_error(o, read_all((golden / name / "o_ref.npy").string())) <= 2e-5);
        CHECK(test::max_abs_error(lse, read_all((golden / name / "lse_ref.npy").string())) <= 2e-5);

        // The program's .npy output equals the API's result on the same inputs.
        test::Problem p;
        p.B = int(cfg.problem.batch);
        p.N = cfg.problem.seq_len;
        p.H = cfg.problem.heads;
        p.Hkv = cfg.problem.kv_heads;
        p.D = int(cfg.problem.head_dim);
        p.causal = cfg.attention.causal;
        p.dilated = cfg.attention.kind == AttentionKind::dilated;
        p.mixing = cfg.attention.mixing;
        p.w = cfg.attention.segment_lengths;
        p.r = cfg.attention.dilation_rates;
        p.scale = cfg.effective_scale();
        p.q = read_all(cfg.input.q);
        p.k = read_all(cfg.input.k);
        p.v = read_all(cfg.input.v);
        const test::Output api = test::run_api<Kokkos::DefaultExecutionSpace, float>(p);
        CHECK(test::max_abs_error(o, api.o) <= 1e-6);
        CHECK(test::max_abs_error(lse, api.lse) <= 1e-6);
        fs::remove_all(out);
      }
}

TEST_CASE("run: verification failure gives exit 3 and status verification_failed", "[run]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  const fs::path out = scratch_dir("verify_fail");
  // A tolerance below float32 rounding cannot pass.
  const RunConfig cfg =
      load_deck((golden / "dense_small" / "deck.yaml").string(),
                {"verify.enabled=true", "verify.tolerance=1e-300",
                 "output.o=", "output.lse=", "output.results=" + (out / "results.yaml").string()});
  CommandLine cl;
  cl.command = Command::run;
  cl.quiet = true;
  CHECK(run_command(cfg, cl) == exit_verification_failed);
  const auto text = [&] {
    std::ifstream in(out / "results.yaml");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  CHECK(text.find("status: verification_failed") != std::string::npos);
  fs::remove_all(out);
}
