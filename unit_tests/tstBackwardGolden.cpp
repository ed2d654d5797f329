// The backward pass (docs/SPEC.md section 7) on the golden cases (shared/golden, copied into
// unit_tests/data): dQ, dK, dV from the library's own forward O and LSE must
// equal the independent float64 answers (dq_ref.npy, dk_ref.npy,
// dv_ref.npy) within 1e-4, for a single member and simulated rings of 3 and
// 4 members with either partition.
#include <catch2/catch.hpp>

#include "RingAttn_BackwardCase.hpp"
#include "RingAttn_GoldenCase.hpp"

#include <CommandLine.hpp>
#include <Commands.hpp>
#include <Deck.hpp>
#include <Npy.hpp>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace ringattn;
using namespace ringattn::driver;
namespace fs = std::filesystem;

TEST_CASE("backward: golden gradients through the API", "[backward][golden]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  for (const char *name : test::golden_cases) {
    const fs::path dir = golden / name;
    const RunConfig cfg = load_deck((dir / "deck.yaml").string());
    const test::Problem p = test::deck_problem(cfg, (dir / "q.npy").string(),
                                               (dir / "k.npy").string(), (dir / "v.npy").string());
    const auto dout = test::read_npy((dir / "do.npy").string());
    const auto dq_ref = test::read_npy((dir / "dq_ref.npy").string());
    const auto dk_ref = test::read_npy((dir / "dk_ref.npy").string());
    const auto dv_ref = test::read_npy((dir / "dv_ref.npy").string());
    // The tests' own reference agrees with the golden answers.
    const test::Gradients mine =
        test::reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
    {
      INFO(name << " test reference");
      CHECK(test::max_abs_error(mine.dq, dq_ref) <= 1e-9);
      CHECK(test::max_abs_error(mine.dk, dk_ref) <= 1e-9);
      CHECK(test::max_abs_error(mine.dv, dv_ref) <= 1e-9);
    }
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
      for (int R : {1, 3, 4}) {
        INFO(name << " R=" << R << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous"));
        RingOptions opts;
        opts.partition = kind;
        opts.members = R;
        const test::Gradients g =
            test::run_api_backward<Kokkos::DefaultExecutionSpace, float>(p, dout, opts);
        CHECK(test::max_abs_error(g.dq, dq_ref) <= 1e-4);
        CHECK(test::max_abs_error(g.dk, dk_ref) <= 1e-4);
        CHECK(test::max_abs_error(g.dv, dv_ref) <= 1e-4);
      }
  }
}

namespace {
fs::path backward_scratch(const std::string &name) { return test::scratch_dir("backward_" + name); }
std::string read_text(const fs::path &path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
} // namespace

TEST_CASE("run: golden gradients through the program (deck_backward.yaml)",
          "[backward][golden][run]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  for (const char *name : test::golden_cases)
    for (const char *ring : {"ring.size=1", "ring.size=3", "ring.size=4"})
      for (const char *partition : {"ring.partition=contiguous", "ring.partition=zigzag"}) {
        INFO(name << " " << ring << " " << partition);
        const fs::path out = backward_scratch(name);
        const std::vector<std::string> sets = {ring,
                                               partition,
                                               "verify.enabled=true",
                                               "verify.rows=8",
                                               "verify.tolerance=1e-4",
                                               "output.o=",
                                               "output.lse=",
                                               "output.dq=" + (out / "dq.npy").string(),
                                               "output.dk=" + (out / "dk.npy").string(),
                                               "output.dv=" + (out / "dv.npy").string(),
                                               "output.results=" + (out / "results.yaml").string()};
        const RunConfig cfg = load_deck((golden / name / "deck_backward.yaml").string(), sets);
        REQUIRE(cfg.attention.backward);
        CommandLine cl;
        cl.command = Command::run;
        cl.quiet = true;
        REQUIRE(run_command(cfg, cl) == exit_ok);
        CHECK(test::max_abs_error(test::read_npy((out / "dq.npy").string()),
                                  test::read_npy((golden / name / "dq_ref.npy").string())) <= 1e-4);
        CHECK(test::max_abs_error(test::read_npy((out / "dk.npy").string()),
                                  test::read_npy((golden / name / "dk_ref.npy").string())) <= 1e-4);
        CHECK(test::max_abs_error(test::read_npy((out / "dv.npy").string()),
                                  test::read_npy((golden / name / "dv_ref.npy").string())) <= 1e-4);
        const std::string text = read_text(out / "results.yaml");
        CHECK(text.find("backward:") != std::string::npos);
        CHECK(text.find("dkv_rows_checked: 8") != std::string::npos);
        // what the ring sent, per member, is the model's analytic minimum
        // (the forward's wire and the same rows of dK/dV)
        const YAML::Node comm = YAML::Load(text)["backward"]["communication"];
        CHECK(comm["bytes_sent_per_member"].as<std::vector<std::int64_t>>() ==
              comm["model_bytes_sent_per_member"].as<std::vector<std::int64_t>>());
        // the backward's peak beside its model (the ratio is held within 10%
        // by driver_memory_model at sizes where it means something; here
        // the peak may even lie below the baseline, memory having been
        // returned since, as under the sanitizers)
        const YAML::Node mem = YAML::Load(text)["backward"]["memory"];
        CHECK(mem["model_bytes"].as<std::int64_t>() > 0);
        CHECK(mem["peak_bytes"].as<std::int64_t>() > 0);
        CHECK(mem["baseline_bytes"].as<std::int64_t>() > 0);
        fs::remove_all(out);
      }
}

TEST_CASE("run: a failed backward verification gives exit 3", "[backward][run]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  const fs::path out = backward_scratch("verify_fail");
  // Forward tolerance met by float32, but no float32 gradient is within 1e-300:
  // only the backward's check can fail... both use verify.tolerance, so the
  // forward fails too; the results must name the backward's failure as well.
  const RunConfig cfg = load_deck(
      (golden / "dense_small" / "deck_backward.yaml").string(),
      {"verify.enabled=true", "verify.tolerance=1e-300", "output.o=", "output.lse=", "output.dq=",
       "output.dk=", "output.dv=", "output.results=" + (out / "results.yaml").string()});
  CommandLine cl;
  cl.command = Command::run;
  cl.quiet = true;
  CHECK(run_command(cfg, cl) == exit_verification_failed);
  const std::string text = read_text(out / "results.yaml");
  CHECK(text.find("status: verification_failed") != std::string::npos);
  CHECK(text.find("dq_rows_checked") != std::string::npos);
  fs::remove_all(out);
}

TEST_CASE("deck: backward keys", "[backward][deck]") {
  const std::string base = "problem: {seq_len: 16, heads: 2, head_dim: 4}\n";
  const RunConfig on = load_deck_string(base + "attention: {backward: true}\n", "d.yaml");
  CHECK(on.attention.backward);
  CHECK(describe(on).find("backward: true") != std::string::npos);
  CHECK_FALSE(load_deck_string(base, "d.yaml").attention.backward);
  // npy input with the backward needs input.do
  CHECK_THROWS_WITH(load_deck_string(base + "attention: {backward: true}\n"
                                            "input: {source: npy, q: q.npy, k: k.npy, v: v.npy}\n",
                                     "d.yaml"),
                    Catch::Contains("input.do"));
  // random input generates dO: input.do is an error there
  CHECK_THROWS_WITH(
      load_deck_string(base + "attention: {backward: true}\ninput: {do: do.npy}\n", "d.yaml"),
      Catch::Contains("input.do"));
  // gradient outputs only with the backward
  CHECK_THROWS_WITH(load_deck_string(base + "output: {dq: dq.npy}\n", "d.yaml"),
                    Catch::Contains("only used with attention.backward: true"));
  // a misspelt key suggests the real one
  CHECK_THROWS_WITH(load_deck_string(base + "attention: {backwards: true}\n", "d.yaml"),
                    Catch::Contains("did you mean 'backward'"));
}
