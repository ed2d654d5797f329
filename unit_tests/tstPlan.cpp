// `ringattn plan` (docs/SPEC.md section 4): the counted exchanges and memory model equal the
// library's exact plans (plan_exchange, model_member_memory), the closed-form
// pair count equals pairs_for_query summed, the capacity search returns the
// largest N that fits, and the printed plan is whole.
#include <Commands.hpp>
#include <Deck.hpp>
#include <Plan.hpp>

#include <api/RingAttn_RingAttention.hpp>
#include <model/RingAttn_RingModel.hpp>
#include <ring/RingAttn_MemoryModel.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>

#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace ringattn;
using namespace ringattn::driver;
using ringattn::Details::ExchangeCount;
using ringattn::Details::ExchangeCounter;
using ringattn::Details::sat_add;
using ringattn::Details::sat_mul;
using ringattn::Details::saturated;

namespace {

struct Shape {
  int H, Hkv;
};

/// Patterns over N positions: dense (causal or not) and dilated with short,
/// long (> N) and rate == length segments, both mixings.
std::vector<Pattern> patterns(std::int64_t N, Shape s) {
  std::vector<Pattern> v;
  for (bool causal : {false, true}) {
    v.push_back(Pattern::dense(N, s.H, s.Hkv, causal));
    v.push_back(Pattern::dilated(N, s.H, s.Hkv, causal, Mixing::mixture, {4, 8, 16}, {1, 2, 4}));
    v.push_back(Pattern::dilated(N, s.H, s.Hkv, causal, Mixing::mixture, {5, 300}, {5, 3}));
    if (s.H >= 2)
      v.push_back(Pattern::dilated(N, s.H, s.Hkv, causal, Mixing::head_groups, {6, 20}, {2, 3}));
    v.push_back(Pattern::dilated(N, s.H, s.Hkv, causal, Mixing::mixture, {1, 7}, {1, 7}));
  }
  return v;
}

ModelProblem problem_of(const Pattern &pattern, PartitionKind kind, Tiling tiling, int threads,
                        std::int64_t B = 2, std::int64_t D = 8, std::int64_t s = 4) {
  ModelProblem pp;
  pp.pattern = pattern;
  pp.dense = false; // use the pattern as given (its seq_len is the one tested)
  pp.batch = B;
  pp.head_dim = D;
  pp.scalar_bytes = s;
  pp.partition = kind;
  pp.tiling = tiling;
  pp.threads = threads;
  return pp;
}

} // namespace

TEST_CASE("plan: saturating arithmetic", "[plan]") {
  CHECK(sat_mul(3, 4) == 12);
  CHECK(sat_mul(std::int64_t(1) << 40, std::int64_t(1) << 40) == saturated);
  CHECK(sat_add(saturated, 1) == saturated);
  CHECK(sat_add(5, 6) == 11);
}

TEST_CASE("plan: counted exchanges equal plan_exchange", "[plan]") {
  for (const Shape s : {Shape{4, 4}, Shape{4, 2}, Shape{4, 1}, Shape{6, 3}, Shape{8, 2}})
    for (std::int64_t N : {1, 7, 64, 101, 257})
      for (const Pattern &pattern : patterns(N, s)) {
        const ExchangeCounter counter(pattern);
        for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
          for (int P : {1, 2, 3, 5})
            for (int q_tile : {3, 64}) {
              if (P > N) continue;
              const Partition part(kind, N, P);
              for (int p = 0; p < P; ++p)
                for (int j = 0; j < P; ++j) {
                  const ringattn::Details::Exchange ex =
                      ringattn::Details::plan_exchange(pattern, part, p, j, true);
                  const ExchangeCount c = counter.count(part, p, j, q_tile);
                  INFO("H " << s.H << " Hkv " << s.Hkv << " N " << N << " branches "
                            << pattern.num_branches << " w0 " << pattern.segment_length[0]
                            << " causal " << pattern.causal << " mixing " << int(pattern.mixing)
                            << " zigzag " << (kind == PartitionKind::zigzag) << " P " << P
                            << " recv " << p << " src " << j << " q_tile " << q_tile);
                  REQUIRE(c.rows == ex.block_rows);
                  REQUIRE(c.wire_rows == ex.rows);
                  for (int i = 0; i < pattern.num_branches; ++i) {
                    REQUIRE(c.branch_tasks[i] == std::int64_t(ex.tasks[i].size()));
                    REQUIRE(c.branch_items[i] ==
                            std::int64_t(
                                ringattn::Details::make_work_items(ex.tasks[i], q_tile).size()));
                  }
                }
            }
      }
}

TEST_CASE("plan: memory model equals model_member_memory", "[plan]") {
  Tiling tiling;
  tiling.q_tile = 4;
  tiling.k_tile = 8;
  for (const Shape s : {Shape{4, 2}, Shape{6, 3}, Shape{2, 2}})
    for (std::int64_t N : {9, 130})
      for (const Pattern &pattern : patterns(N, s))
        for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
          for (int P : {1, 2, 4}) {
            const Partition part(kind, N, P);
            for (std::int64_t bytes : {2, 4, 8}) {
              const ModelProblem pp = problem_of(pattern, kind, tiling, 3, 2, 8, bytes);
              for (int p = 0; p < P; ++p) {
                const MemberMemoryModel lib =
                    model_member_memory(pattern, part, p, 2, 8, bytes, true, tiling, 3);
                const MemberMemoryModel ours = model_member(pp, part, p, true);
                INFO("N " << N << " P " << P << " p " << p << " causal " << pattern.causal
                          << " branches " << pattern.num_branches);
                CHECK(ours.q == lib.q);
                CHECK(ours.k == lib.k);
                CHECK(ours.v == lib.v);
                CHECK(ours.o == lib.o);
                CHECK(ours.lse == lib.lse);
                CHECK(ours.blocks == lib.blocks);
                CHECK(ours.block_rows == lib.block_rows);
                CHECK(ours.tiles == lib.tiles);
                CHECK(ours.schedule == lib.schedule);
                CHECK(ours.total() == lib.total());
              }
              const MemberMemoryModel lib =
                  model_member_memory(pattern, part, 0, 2, 8, bytes, false, tiling, 3);
              const MemberMemoryModel ours = model_member(pp, part, 0, false);
              CHECK(ours.total() == lib.total());
              CHECK(ours.blocks == lib.blocks);
              CHECK(ours.schedule == lib.schedule);
              // the ring analysis reports the same numbers
              const RingModel ra = analyse_ring(pp, N, P);
              CHECK(ra.process.total() == lib.total());
              for (int p = 0; p < P; ++p)
                CHECK(ra.memory[p].total() ==
                      model_member_memory(pattern, part, p, 2, 8, bytes, true, tiling, 3).total());
            }
          }
}

TEST_CASE("plan: the floor and the backward's traffic from the enumerated exchanges", "[plan]") {
  // The floor (issue #14): the caller's Q, K, V, O, LSE, the two receive
  // buffers (largest wire received at even and at odd steps) and the tiles,
  // here summed from plan_exchange() directly. The backward's traffic: each
  // member sends the forward's wires (2 * B * D * s bytes a row) and sends
  // back the dK/dV partial of every wire it receives (accumulate type).
  Tiling tiling;
  tiling.q_tile = 4;
  tiling.k_tile = 8;
  const std::int64_t B = 2, D = 8;
  for (const Shape sh : {Shape{4, 2}, Shape{6, 3}})
    for (const Pattern &pattern : patterns(97, sh))
      for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
        for (int P : {1, 3, 4})
          for (std::int64_t s : {2, 4}) {
            const Partition part(kind, 97, P);
            const ModelProblem pp = problem_of(pattern, kind, tiling, 3, B, D, s);
            const RingModel ra = analyse_ring(pp, 97, P);
            const BackwardModel bm = model_backward(pp, ra, true);
            std::int64_t kv_bytes = 0, partial_bytes = 0;
            for (int p = 0; p < P; ++p) {
              const std::int64_t n = part.local_size(p);
              std::int64_t recv_at[2] = {0, 0};
              for (int j = 0; j < P; ++j) {
                if (j == p) continue;
                const std::int64_t in =
                    ringattn::Details::plan_exchange(pattern, part, p, j, false).rows;
                const std::int64_t out =
                    ringattn::Details::plan_exchange(pattern, part, j, p, false).rows;
                const int step = (p - j + P) % P;
                recv_at[step % 2] = std::max(recv_at[step % 2], in);
                kv_bytes += out * 2 * B * D * s;
                partial_bytes += in * 2 * B * D * 4;
              }
              const MemberMemoryModel &m = ra.memory[std::size_t(p)];
              const std::int64_t floor =
                  B * n * (2 * pattern.heads + 2 * pattern.kv_heads) * D * s +
                  B * pattern.heads * n * 4 + (recv_at[0] + recv_at[1]) * 2 * B * D * s + m.tiles;
              INFO("P " << P << " p " << p << " s " << s << " causal " << pattern.causal
                        << " branches " << pattern.num_branches);
              CHECK(m.floor == floor);
              CHECK(m.floor <= m.total());
            }
            CHECK(bm.kv_bytes == kv_bytes);
            CHECK(bm.partial_bytes == partial_bytes);
            CHECK(bm.flops == 10.0L * D * B * pairs_in_range(pattern, 0, 97));
          }
}

TEST_CASE("plan: pairs in a range equal pairs_for_query summed", "[plan]") {
  for (const Shape s : {Shape{4, 2}, Shape{5, 5}, Shape{3, 1}})
    for (std::int64_t N : {1, 13, 100})
      for (const Pattern &pattern : patterns(N, s))
        for (std::int64_t begin : {std::int64_t(0), N / 3, N - 1})
          for (std::int64_t end : {N / 2, N}) {
            std::int64_t brute = 0;
            for (std::int64_t t = begin; t < end; ++t)
              for (int h = 0; h < pattern.heads; ++h) brute += pattern.pairs_for_query(t, h);
            INFO("N " << N << " [" << begin << ", " << end << ") causal " << pattern.causal);
            CHECK(pairs_in_range(pattern, begin, end) == (long double)brute);
          }
}

TEST_CASE("plan: the ring analysis sums member pairs to the whole", "[plan]") {
  const Pattern pattern = Pattern::dilated(1000, 4, 2, true, Mixing::mixture, {16, 64}, {1, 4});
  for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag}) {
    const RingModel ra = analyse_ring(problem_of(pattern, kind, Tiling{}, 1), 1000, 7);
    long double sum = 0;
    for (long double p : ra.pairs) sum += p;
    CHECK(sum == pairs_in_range(pattern, 0, 1000));
  }
}

TEST_CASE("plan: dense memory per member grows as N / P", "[plan]") {
  for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
    for (bool causal : {false, true}) {
      ModelProblem pp = problem_of(Pattern::dense(64, 8, 2, causal), kind, Tiling{}, 2, 1, 64);
      pp.dense = true;
      const std::int64_t N = std::int64_t(1) << 20;
      // from P = 4: at P = 2 a member makes one hop and holds one receive
      // buffer, from P = 3 on two (they alternate between steps)
      for (int P : {4, 8, 16}) {
        const double whole = double(max_member_total(pp, N, P));
        const double half_share = double(max_member_total(pp, N, 2 * P));
        const double weak = double(max_member_total(pp, 2 * N, 2 * P));
        INFO("P " << P << " causal " << causal);
        CHECK(half_share / whole == Approx(0.5).epsilon(0.01)); // strong scaling
        CHECK(weak / whole == Approx(1.0).epsilon(0.01));       // weak scaling
      }
    }
}

TEST_CASE("plan: contiguous members with segments shorter than a share exchange nothing",
          "[plan]") {
  const Pattern pattern =
      Pattern::dilated(1 << 16, 8, 8, false, Mixing::mixture, {512, 1024, 2048}, {1, 2, 4});
  const ModelProblem pp = problem_of(pattern, PartitionKind::contiguous, Tiling{}, 1);
  for (int P : {1, 2, 4, 8, 16, 32}) { // shares of 2048 tokens or more
    const RingModel ra = analyse_ring(pp, 1 << 16, P);
    for (std::int64_t bytes : ra.sent_bytes) CHECK(bytes == 0);
    CHECK(ra.hops_made == 0);
    CHECK(ra.hops_skipped == std::int64_t(P) * (P - 1));
  }
  // A share that cuts segments: neighbours exchange, others do not.
  const RingModel cut = analyse_ring(pp, (1 << 16) + 1000, 8);
  CHECK(cut.hops_made > 0);
  CHECK(cut.hops_made < 8 * 7);
  std::int64_t sent = 0;
  for (std::int64_t bytes : cut.sent_bytes) sent += bytes;
  CHECK(sent > 0);
  // A dense ring sends every block everywhere (non-causal).
  ModelProblem dense = problem_of(Pattern::dense(4096, 4, 2, false), PartitionKind::contiguous,
                                  Tiling{}, 1, 1, 16, 4);
  dense.dense = true;
  const RingModel d = analyse_ring(dense, 4096, 4);
  CHECK(d.hops_made == 12);
  for (std::size_t k = 0; k < d.sent_bytes.size(); ++k) CHECK(d.sent_bytes[k] == d.dense_bytes[k]);
  // Sampled members (a ring beyond the exact limit) agree with the exact ones.
  const RingModel exact = analyse_ring(dense, 4096, 40);
  const RingModel sampled = analyse_ring(dense, 4096, 40, 8);
  REQUIRE(sampled.sampled);
  REQUIRE_FALSE(exact.sampled);
  for (std::size_t k = 0; k < sampled.evaluated.size(); ++k) {
    const int p = sampled.evaluated[k];
    CHECK(sampled.memory[k].total() == exact.memory[p].total());
    CHECK(sampled.sent_bytes[k] == exact.sent_bytes[p]);
    CHECK(sampled.pairs[k] == exact.pairs[p]);
  }
}

TEST_CASE("plan: the capacity search returns the largest N that fits", "[plan]") {
  const std::int64_t step = default_fit_step;
  ModelProblem dense =
      problem_of(Pattern::dense(64, 8, 2, true), PartitionKind::zigzag, Tiling{}, 2, 1, 64, 4);
  dense.dense = true;
  const ModelProblem dilated =
      problem_of(Pattern::dilated(64, 4, 2, false, Mixing::mixture, {512, 1024, 2048}, {1, 2, 4}),
                 PartitionKind::contiguous, Tiling{}, 2, 1, 64, 4);
  for (const ModelProblem *pp : {static_cast<const ModelProblem *>(&dense), &dilated})
    for (int P : {1, 2, 8, 64})
      for (std::uint64_t memory : {std::uint64_t(100) << 20, std::uint64_t(3) << 30}) {
        const Fit fit = longest_fitting_sequence(*pp, P, memory);
        INFO("P " << P << " memory " << memory << " dense " << pp->dense);
        REQUIRE(fit.seq_len > 0);
        REQUIRE_FALSE(fit.capped);
        CHECK(fit.seq_len % step == 0);
        CHECK(fit.bytes == max_member_total(*pp, fit.seq_len, P));
        CHECK(std::uint64_t(fit.bytes) <= memory);
        CHECK(std::uint64_t(max_member_total(*pp, fit.seq_len + step, P)) > memory);
        CHECK(fit.evaluations < 100);
      }
  // Nothing fits: seq_len 0. Everything up to the cap fits: capped.
  CHECK(longest_fitting_sequence(dense, 4, 1000).seq_len == 0);
  const Fit capped = longest_fitting_sequence(dense, 4, std::uint64_t(1) << 40, step, 1 << 20);
  CHECK(capped.capped);
  CHECK(capped.seq_len == 1 << 20);
  // Huge memory: the search stops at the default cap without overflow.
  const Fit huge = longest_fitting_sequence(dense, 64, std::uint64_t(1) << 63);
  CHECK(huge.seq_len > 0);
  CHECK(huge.seq_len <= default_fit_cap);
}

TEST_CASE("plan: units", "[plan]") {
  CHECK(human_bytes(512) == "512 B");
  CHECK(human_bytes(1536) == "1.50 KiB");
  CHECK(human_bytes(1024.0L * 1024 * 1024) == "1.00 GiB");
  CHECK(human_count(7516192768.0L, "FLOP") == "7.52 GFLOP");
}

TEST_CASE("plan: the printed plan of the quickstart deck", "[plan]") {
  const RunConfig cfg = load_deck(std::string(RINGATTN_INPUTS_DIR) + "/quickstart.yaml");
  PlanOptions opt;
  opt.memory_bytes = std::uint64_t(1) << 30;
  opt.memory_given = true;
  opt.tiling = default_tiling<Kokkos::DefaultHostExecutionSpace>(64);
  opt.threads = 2;
  std::ostringstream out, err;
  REQUIRE(write_plan(cfg, opt, out, err) == exit_ok);
  const std::string text = out.str();
  CHECK(err.str().empty());
  for (const char *part :
       {"problem\n", "memory of the process (mode simulated: 4 members", "communication (",
        "work (", "key pairs   29360128", "longest sequence that fits 1.00 GiB per member",
        "claimed vs modelled", "0.23 GB", "<- the deck's ring size"})
    CHECK(text.find(part) != std::string::npos);
  // every ring size of the capacity table has a row
  for (const char *row : {"\n          1 ", "\n         64 "})
    CHECK(text.find(row) != std::string::npos);
}

TEST_CASE("plan: decks beyond the plan's limits give exit code 2", "[plan]") {
  const std::string deck = "problem: {seq_len: 1000000, heads: 4, head_dim: 8}\n"
                           "ring: {mode: simulated, size: 70000}\n";
  const RunConfig cfg = load_deck_string(deck, "big.yaml");
  PlanOptions opt;
  std::ostringstream out, err;
  CHECK(write_plan(cfg, opt, out, err) == exit_bad_input);
  CHECK(err.str().find("ring.size") != std::string::npos);
}

TEST_CASE("plan: a sweep is planned point by point", "[plan]") {
  const std::string deck = "problem: {seq_len: 4096, heads: 4, head_dim: 8}\n"
                           "ring: {mode: mpi}\n"
                           "sweep: {problem.seq_len: [4096, 8192]}\n";
  const RunConfig cfg = load_deck_string(deck, "sweep.yaml");
  PlanOptions opt;
  opt.world_size = 2;
  std::ostringstream out, err;
  REQUIRE(write_plan(cfg, opt, out, err) == exit_ok);
  const std::string text = out.str();
  CHECK(text.find("sweep point 1 of 2: problem.seq_len=4096") != std::string::npos);
  CHECK(text.find("sweep point 2 of 2: problem.seq_len=8192") != std::string::npos);
  CHECK(text.find("memory per member (mode mpi: 2 members") != std::string::npos);
  CHECK(text.find("ring.size not set") != std::string::npos);
  CHECK(text.find("as for sweep point 1") != std::string::npos);
}
