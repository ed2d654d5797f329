// The ring's exchange plan (docs/DESIGN.md layer 4) against brute force: the block
// member j sends member p holds exactly the rows p needs (the analytic
// minimum), and the tasks built on it cover exactly the pairs docs/SPEC.md section 2 keeps.
#include <catch2/catch.hpp>

#include "RingAttn_TestCase.hpp"
#include <ring/detail/RingAttn_Exchange.hpp>

#include <algorithm>
#include <random>
#include <set>
#include <tuple>
#include <vector>

using namespace ringattn;
using namespace ringattn::test;
using namespace ringattn::Details; // the exchange planning under test

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
      // the block the kernels read: one row per (branch, kv head, u) needed
      REQUIRE(recv.block_rows == std::int64_t(needed.size()));
      REQUIRE(send.block_rows == recv.block_rows);
      REQUIRE(send.gather.size() == recv.gather.size());
      std::int64_t planned = 0;
      for (const auto &branch : recv.tasks)
        for (const auto &task : branch) planned += task_pairs(task, prob.causal);
      REQUIRE(planned == pairs);
      // the gathered rows are exactly the needed ones
      std::int64_t rows = 0;
      for (const PackRun &run : send.gather) {
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

TEST_CASE("exchange plans past 2^31 rows use 64-bit offsets", "[ring][exchange]") {
  // N = 2^34 positions on 2 members (2^33 each): row counts, block rows and
  // task positions pass 2^31 (and B x N x H x D far more); nothing is allocated.
  const std::int64_t N = std::int64_t(1) << 34, half = N / 2;
  const Partition part(PartitionKind::contiguous, N, 2);
  // Dense: member 1 needs all of member 0's rows, once per kv head.
  const Pattern dense = Pattern::dense(N, 8, 2, false);
  const Exchange ex = plan_exchange(dense, part, 1, 0, true);
  CHECK(ex.rows == 2 * half);
  CHECK(ex.block_rows == 2 * half);
  CHECK_FALSE(ex.expands());
  REQUIRE(ex.pack.size() == 2);
  CHECK(ex.pack[1].block_row == half);
  CHECK(ex.pack[1].count == half);
  for (const BlockTask &task : ex.tasks[0]) {
    CHECK(task.q_count == half);
    CHECK(task.q_row0 == 0);
    CHECK(task.q_pos0 == half);
    CHECK(task.key_runs[0].count == half);
  }
  // Dilated, one segment of the whole sequence at rate 4: heads 0..3 of kv
  // head 0 take phases 0..3, so every row of member 0 is needed once.
  const Pattern dilated =
      Pattern::dilated(N, 4, 1, true, Mixing::mixture, {N, std::int64_t(1) << 31}, {4, 1});
  const Exchange dx = plan_exchange(dilated, part, 1, 0, true);
  // branch 0: 4 phases x 2^31 rows; branch 1: member 0's segments are not member 1's
  CHECK(dx.rows == half);
  std::int64_t last_row = 0;
  for (const PackRun &run : dx.pack) {
    CHECK(run.block_row == last_row);
    last_row += run.count;
  }
  CHECK(last_row == dx.rows);
  // The last query of head 3 (phase 3): N / 4 keys in branch 0, 2^31 in branch 1.
  CHECK(dilated.pairs_for_query(N - 1, 3) == N / 4 + (std::int64_t(1) << 31));
  CHECK(dilated.pairs_for_query(N - 1, 0) == (std::int64_t(1) << 31));
}

TEST_CASE("work items tile every task's queries once, in near-equal tiles of at most q_tile",
          "[ring][exchange]") {
  // make_work_items: ceil(q / q_tile) tiles per task, contiguous and
  // disjoint, covering [0, q); each at most q_tile; all but the last whole
  // granules, and no two differing by more than one granule (the last may
  // be short by less than one).
  std::mt19937_64 rng(20261203);
  for (int q_tile : {1, 7, 16, 48, 64, 100, 768, 1536}) {
    std::vector<BlockTask> tasks;
    for (std::int64_t q : {1, 2, 47, 48, 49, 255, 256, 767, 768, 769, 4096, 16384}) {
      BlockTask t;
      t.q_count = q;
      tasks.push_back(t);
    }
    for (int extra = 0; extra < 8; ++extra) {
      BlockTask t;
      t.q_count = std::uniform_int_distribution<std::int64_t>(1, 20000)(rng);
      tasks.push_back(t);
    }
    const std::vector<WorkItem> items = make_work_items(tasks, q_tile);
    const std::int64_t g = work_item_granule(q_tile);
    CHECK(q_tile % g == 0);
    std::size_t at = 0;
    for (std::size_t t = 0; t < tasks.size(); ++t) {
      const std::int64_t q = tasks[t].q_count;
      INFO("q_tile " << q_tile << " task of " << q << " queries");
      const std::int64_t tiles = (q + q_tile - 1) / q_tile;
      std::int64_t next = 0, largest = 0, smallest = q;
      for (std::int64_t i = 0; i < tiles; ++i, ++at) {
        REQUIRE(at < items.size());
        const WorkItem &item = items[at];
        CHECK(item.task == std::int64_t(t));
        CHECK(item.q_begin == next);
        CHECK(item.q_count >= 1);
        CHECK(item.q_count <= q_tile);
        CHECK(item.q_begin % g == 0);
        next = item.q_begin + item.q_count;
        largest = std::max(largest, item.q_count);
        if (i + 1 < tiles) smallest = std::min(smallest, item.q_count);
      }
      CHECK(next == q);
      if (tiles > 1) CHECK(largest - smallest <= g);
    }
    CHECK(at == items.size());
  }
}
