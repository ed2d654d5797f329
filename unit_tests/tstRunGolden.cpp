// The ringattn program end to end on the golden cases
// (unit_tests/data/golden): `run` writes O and LSE as .npy, which must equal the
// independent float64 answers within 2e-5, and the API's own result, for a
// single member and for simulated rings with either partition. In 16-bit
// storage (bfloat16, float16) O and LSE are float32 files holding the stored
// values, within 1e-2 / 2e-3 (O) and 1e-3 (LSE) of the float64 reference of the
// rounded inputs.
#include <catch2/catch.hpp>

#include "RingAttn_GoldenCase.hpp"
#include "RingAttn_Reference.hpp"

#include <CommandLine.hpp>
#include <Commands.hpp>
#include <Deck.hpp>
#include <Npy.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

using namespace ringattn;
using namespace ringattn::driver;
namespace fs = std::filesystem;

TEST_CASE("run: golden cases through the program match the float64 answers", "[run][golden]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  for (const char *name : test::golden_cases)
    for (const char *ring : {"ring.size=1", "ring.size=3", "ring.size=4"})
      for (const char *partition : {"ring.partition=contiguous", "ring.partition=zigzag"}) {
        INFO(name << " " << ring << " " << partition);
        const fs::path out = test::scratch_dir(name);
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
        const auto o = test::read_npy((out / "o.npy").string());
        const auto lse = test::read_npy((out / "lse.npy").string());
        CHECK(test::max_abs_error(o, test::read_npy((golden / name / "o_ref.npy").string())) <=
              2e-5);
        CHECK(test::max_abs_error(lse, test::read_npy((golden / name / "lse_ref.npy").string())) <=
              2e-5);

        // The program's .npy output equals the API's result on the same
        // inputs and the same simulated ring (a different ring size merges
        // partials in a different order: float32 rounding, not equality).
        const test::Problem p = test::deck_problem(cfg, cfg.input.q, cfg.input.k, cfg.input.v);
        RingOptions options;
        options.members = cfg.ring.size;
        options.partition = cfg.ring.partition;
        const test::Output api = test::run_api<Kokkos::DefaultExecutionSpace, float>(p, options);
        CHECK(test::max_abs_error(o, api.o) <= 1e-6);
        CHECK(test::max_abs_error(lse, api.lse) <= 1e-6);
        fs::remove_all(out);
      }
}

TEMPLATE_TEST_CASE("run: 16-bit storage on the golden cases matches the float64 reference of "
                   "the rounded inputs",
                   "[run][golden][half]", bfloat16_t, float16_t) {
  using Scalar = TestType;
  const bool bf16 = std::is_same_v<Scalar, bfloat16_t>;
  const double o_tolerance = bf16 ? 1e-2 : 2e-3, lse_tolerance = 1e-3;
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  for (const char *name : test::golden_cases)
    for (const char *ring : {"ring.size=1", "ring.size=3"}) {
      INFO(name << " " << ring << (bf16 ? " bfloat16" : " float16"));
      const fs::path out = test::scratch_dir(std::string(name) + "_half");
      const RunConfig cfg = load_deck(
          (golden / name / "deck.yaml").string(),
          {ring, bf16 ? "problem.dtype=bfloat16" : "problem.dtype=float16", "ring.partition=zigzag",
           "verify.enabled=true", "verify.rows=1000000", "output.o=" + (out / "o.npy").string(),
           "output.lse=" + (out / "lse.npy").string(),
           "output.results=" + (out / "results.yaml").string()});
      CHECK(cfg.verify.tolerance == o_tolerance); // the dtype's default
      CommandLine cl;
      cl.command = Command::run;
      cl.quiet = true;
      REQUIRE(run_command(cfg, cl) == exit_ok); // its own check of every row passed
      CHECK(NpyReader((out / "o.npy").string()).header().dtype == DType::float32);
      const auto o = test::read_npy((out / "o.npy").string());
      const auto lse = test::read_npy((out / "lse.npy").string());
      const test::Problem p =
          test::rounded_to<Scalar>(test::deck_problem(cfg, cfg.input.q, cfg.input.k, cfg.input.v));
      const test::Reference ref =
          test::reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
      CHECK(test::max_abs_error(o, ref.o) <= o_tolerance);
      CHECK(test::max_abs_error(lse, ref.lse) <= lse_tolerance);
      // The file holds exactly the stored 16-bit values.
      std::size_t not_stored = 0;
      for (double x : o) not_stored += double(float(Scalar(x))) == x ? 0 : 1;
      CHECK(not_stored == 0);
      const auto text = [&] {
        std::ifstream in(out / "results.yaml");
        return std::string(std::istreambuf_iterator<char>(in), {});
      }();
      CHECK(text.find(bf16 ? "dtype: bfloat16" : "dtype: float16") != std::string::npos);
      fs::remove_all(out);
    }
}

TEST_CASE("run: verification failure gives exit 3 and status verification_failed", "[run]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  const fs::path out = test::scratch_dir("verify_fail");
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
