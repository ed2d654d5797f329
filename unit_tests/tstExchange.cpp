// The ring's exchange plan (DESIGN layer 4) against brute force: the block
// member j sends member p holds exactly the rows p needs (the analytic
// minimum), and the tasks built on it cover exactly the pairs SPEC 2 keeps.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"
#include <ring/RingAttn_Exchange.hpp>

#include <random>
#include <set>
#include <tuple>

using namespace ringattn;
using namespace ringattn::test;

namespace {

std::int64_t task_pairs(const BlockTask &task, bool causal) {
  std::int64_t n = 0;
  for (std::int64_t c = 0; c < task.q_count; ++c) {
    const std::int64_t qpos = task.q_pos0 + c * task.stride;
    for (int r = 0; r < task.num_key_runs; ++r) {
      const KeyRun &run = task.key_runs[r];
      for (std::int64_t kk = 0; kk < run.count; ++kk)
        if (!causal || run.pos0 + kk * task.stride <= qpos) ++n;
    }
  }
  return n;
}

void check_plan(const Problem &prob, PartitionKind kind, int P) {
  const Pattern pattern = prob.pattern();
  const LiteralPattern lit = prob.literal();
  const Partition part(kind, prob.N, P);
  const int hpk = prob.H / prob.Hkv;
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < P; ++j) {
      // brute force: needed (branch, kv head, u) rows and kept (h, t, u, branch) pairs
      std::set<std::tuple<int, int, std::int64_t>> needed;
      std::int64_t pairs = 0;
      for (int i = 0; i < int(lit.w.size()); ++i)
        for (int h = 0; h < prob.H; ++h)
          for (std::int64_t t = 0; t < prob.N; ++t) {
            if (part.owner(t) != p) continue;
            for (std::int64_t u = 0; u < prob.N; ++u)
              if (part.owner(u) == j && lit.keeps(t, u, h, i)) {
                needed.insert({i, h / hpk, u});
                ++pairs;
              }
          }
      const Exchange recv = plan_exchange(pattern, part, p, j, true);
      const Exchange send = plan_exchange(pattern, part, p, j, false);
      INFO("receiver " << p << " source " << j << " P=" << P);
      REQUIRE(recv.rows == std::int64_t(needed.size()));
      REQUIRE(send.rows == recv.rows);
      REQUIRE(send.pack.size() == recv.pack.size());
      std::int64_t planned = 0;
      for (const auto &branch : recv.tasks)
        for (const auto &task : branch) planned += task_pairs(task, prob.causal);
      REQUIRE(planned == pairs);
      // the packed rows are exactly the needed ones
      std::int64_t rows = 0;
      for (const PackRun &run : send.pack) {
        REQUIRE(run.block_row == rows);
        rows += run.count;
        for (std::int64_t c = 0; c < run.count; ++c) {
          const std::int64_t pos = part.global_position(j, run.src_row0 + c * run.stride);
          REQUIRE(part.owner(pos) == j);
        }
      }
    }
}

} // namespace

TEST_CASE("exchange plans hold exactly the needed rows and pairs", "[ring][exchange]") {
  std::mt19937_64 rng(4242);
  for (int trial = 0; trial < 40; ++trial) {
    const Problem prob = random_problem(rng, 48);
    INFO(prob.describe());
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
      for (int P : {1, 2, 3, 5}) check_plan(prob, kind, P);
  }
}

TEST_CASE("hops that share no segment are skipped", "[ring][exchange]") {
  // Segments no longer than a member's share, contiguous: only neighbours
  // whose ranges touch a common segment exchange anything.
  const Pattern pattern = Pattern::dilated(1024, 4, 4, false, Mixing::mixture, {64, 128}, {1, 2});
  const Partition part(PartitionKind::contiguous, 1024, 8);
  int nonempty = 0;
  for (int p = 0; p < 8; ++p)
    for (int j = 0; j < 8; ++j)
      if (!plan_exchange(pattern, part, p, j, false).empty()) ++nonempty;
  CHECK(nonempty == 8); // each member needs only its own rows
}
