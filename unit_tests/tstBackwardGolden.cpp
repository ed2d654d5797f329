// The backward pass (SPEC 7) on the golden cases (shared/golden, copied into
// unit_tests/data): dQ, dK, dV from the library's own forward O and LSE must
// equal the independent float64 answers (dq_ref.npy, dk_ref.npy,
// dv_ref.npy) within 1e-4, for a single member and simulated rings of 3 and
// 4 members with either partition.
#include <catch2/catch.hpp>

#include "RingAttn_BackwardCase.hpp"

#include <Deck.hpp>
#include <Npy.hpp>

#include <filesystem>
#include <string>
#include <vector>

using namespace ringattn;
using namespace ringattn::driver;
namespace fs = std::filesystem;

namespace {

std::vector<double> read_npy(const std::string &path) {
  NpyReader reader(path);
  std::vector<double> x(std::size_t(reader.header().num_elements()));
  reader.read(0, std::int64_t(x.size()), x.data());
  return x;
}

const char *backward_golden_cases[] = {
    "dense_causal",       "dense_gqa_causal",       "dense_mqa",
    "dense_small",        "dilated_head_groups",    "dilated_head_groups_uneven",
    "dilated_mixture",    "dilated_mixture_causal", "dilated_mixture_ragged",
    "dilated_one_branch", "dilated_r_equals_w",     "dilated_w_beyond_n"};

} // namespace

TEST_CASE("backward: golden gradients through the API", "[backward][golden]") {
  const fs::path golden = fs::path(RINGATTN_TEST_DATA_DIR) / "golden";
  for (const char *name : backward_golden_cases) {
    const fs::path dir = golden / name;
    const RunConfig cfg = load_deck((dir / "deck.yaml").string());
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
    p.q = read_npy((dir / "q.npy").string());
    p.k = read_npy((dir / "k.npy").string());
    p.v = read_npy((dir / "v.npy").string());
    const auto dout = read_npy((dir / "do.npy").string());
    const auto dq_ref = read_npy((dir / "dq_ref.npy").string());
    const auto dk_ref = read_npy((dir / "dk_ref.npy").string());
    const auto dv_ref = read_npy((dir / "dv_ref.npy").string());
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
