// Ring traffic at the true minimum (SPEC 3): in one ring pass each
// (kv head, position) row a member needs from another crosses once, however
// many branches or query heads read it. The needed rows are enumerated here
// from the literal definitions of SPEC 2 and SPEC 3 (query positions, key
// positions, heads, branches, owners), not from the exchange code, and
// compared with the plan's wire; the wire expanded on the receiver must be
// the block the kernels read.
#include <catch2/catch.hpp>

#include "RingAttn_Reference.hpp"
#include <kernels/detail/RingAttn_Pack.hpp>
#include <ring/detail/RingAttn_Exchange.hpp>

#include <map>
#include <random>
#include <set>
#include <tuple>
#include <utility>

using namespace ringattn;
using namespace ringattn::test;
using namespace ringattn::Details; // the exchange planning under test

namespace {

/// SPEC 3's owner of position u, from the definition (floor(p N / P) cuts).
int literal_owner(std::int64_t u, std::int64_t N, int P, bool zigzag) {
  const int pieces = zigzag ? 2 * P : P;
  int piece = 0;
  while (!(u >= std::int64_t(piece) * N / pieces && u < std::int64_t(piece + 1) * N / pieces))
    ++piece;
  if (!zigzag) return piece;
  return piece < P ? piece : 2 * P - 1 - piece;
}

struct TrafficCase {
  LiteralPattern lit;
  Pattern pattern;
};

/// Random small patterns where branches and heads overlap often: 1-4
/// branches of small rates (shared residues), H up to 8, Hkv | H.
TrafficCase random_case(std::mt19937_64 &rng) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  TrafficCase c;
  LiteralPattern &lit = c.lit;
  lit.N = pick(1, 200);
  const int divisors[][4] = {{1, 1, 1, 1}, {1, 2, 2, 2}, {1, 3, 3, 3}, {1, 2, 4, 4},
                             {1, 5, 5, 5}, {1, 2, 3, 6}, {1, 7, 7, 7}, {1, 2, 4, 8}};
  lit.H = int(pick(1, 8));
  lit.Hkv = divisors[lit.H - 1][pick(0, 3)];
  lit.causal = pick(0, 1) == 1;
  const bool dense = pick(0, 5) == 0;
  if (dense) {
    lit.w = {lit.N};
    lit.r = {1};
    c.pattern = Pattern::dense(lit.N, lit.H, lit.Hkv, lit.causal);
    return c;
  }
  const int G = int(pick(1, std::min(4, lit.H)));
  lit.mixing = pick(0, 1) ? LiteralPattern::Mixing::mixture : LiteralPattern::Mixing::head_groups;
  for (int i = 0; i < G; ++i) {
    const std::int64_t wi = pick(1, lit.N + 8);
    lit.w.push_back(wi);
    lit.r.push_back(pick(1, std::min<std::int64_t>(wi, 6)));
  }
  c.pattern = Pattern::dilated(lit.N, lit.H, lit.Hkv, lit.causal,
                               lit.mixing == LiteralPattern::Mixing::mixture ? Mixing::mixture
                                                                             : Mixing::head_groups,
                               lit.w, lit.r);
  return c;
}

/// (kv head, position) rows member p needs from member j: some query t of
/// p, of a head h reading kv head h / (H / Hkv), keeps u in some branch.
std::set<std::pair<int, std::int64_t>> needed_rows(const LiteralPattern &lit, int P, bool zigzag,
                                                   int p, int j) {
  std::set<std::pair<int, std::int64_t>> rows;
  const int hpk = lit.H / lit.Hkv;
  for (std::int64_t u = 0; u < lit.N; ++u) {
    if (literal_owner(u, lit.N, P, zigzag) != j) continue;
    for (int h = 0; h < lit.H; ++h) {
      if (rows.count({h / hpk, u})) continue;
      bool needed = false;
      for (std::int64_t t = 0; t < lit.N && !needed; ++t) {
        if (literal_owner(t, lit.N, P, zigzag) != p) continue;
        for (int i = 0; i < int(lit.w.size()) && !needed; ++i) needed = lit.keeps(t, u, h, i);
      }
      if (needed) rows.insert({h / hpk, u});
    }
  }
  return rows;
}

using HostT4 = Kokkos::View<double ****, Kokkos::LayoutRight, Kokkos::HostSpace>;
using ConstHostT4 = Kokkos::View<const double ****, Kokkos::LayoutRight, Kokkos::HostSpace>;

/// pack -> expand on the receiver gives, bit for bit, the block gathered
/// directly from the source's K/V (what the kernels read), every row written.
/// Returns how many branches read the wire itself (Exchange::reads_wire).
int check_expand(const Exchange &recv, const Exchange &send, std::int64_t n_source, int Hkv,
                 std::mt19937_64 &rng) {
  const int B = 2, D = 3;
  using Exec = Kokkos::DefaultHostExecutionSpace;
  HostT4 k("k", B, n_source, Hkv, D), v("v", B, n_source, Hkv, D);
  std::uniform_real_distribution<double> uni(-1, 1);
  for (std::size_t x = 0; x < k.span(); ++x) {
    k.data()[x] = uni(rng);
    v.data()[x] = uni(rng);
  }
  HostT4 wire("wire", 2, B, send.rows, D), direct("direct", 2, B, recv.block_rows, D),
      block("block", 2, B, recv.block_rows, D);
  Kokkos::deep_copy(block, std::nan(""));
  const Exec exec;
  auto runs = [](const auto &list) {
    using T = std::decay_t<decltype(list[0])>;
    return Kokkos::View<const T *, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
        list.data(), list.size());
  };
  pack_block<Exec, double>(exec, k, v, runs(send.pack), wire);
  pack_block<Exec, double>(exec, k, v, runs(recv.gather), direct);
  if (recv.expands())
    expand_block<Exec, double>(exec, wire, runs(recv.expand), recv.block_rows, block);
  else
    Kokkos::deep_copy(block, wire); // the wire is the block
  exec.fence();
  for (std::size_t x = 0; x < block.span(); ++x) REQUIRE(block.data()[x] == direct.data()[x]);
  if (!recv.expands()) return 0;
  int reading_wire = 0;
  // The forward expands a branch at a time (Exchange::branch_expand): each
  // branch's part, expanded alone into a block of its own rows, is that
  // branch's rows of the gathered block; the parts tile the block.
  REQUIRE(recv.branch_row0.front() == 0);
  REQUIRE(recv.branch_row0.back() == recv.block_rows);
  for (int i = 0; i + 1 < int(recv.branch_row0.size()); ++i) {
    const std::int64_t row0 = recv.branch_row0[std::size_t(i)], rows = recv.branch_rows(i);
    REQUIRE(rows >= 0);
    const std::vector<ExpandRun> part = recv.branch_expand(i);
    std::int64_t elements = 0;
    for (const ExpandRun &e : part) {
      REQUIRE(e.elem0 == elements);
      elements += e.count;
    }
    REQUIRE(elements == rows);
    if (rows == 0) continue;
    if (recv.branch_reads_wire(i)) {
      // the branch's part is the wire, row for row
      ++reading_wire;
      REQUIRE(rows == recv.rows);
      for (int kv = 0; kv < 2; ++kv)
        for (int b = 0; b < B; ++b)
          for (std::int64_t r = 0; r < rows; ++r)
            for (int d = 0; d < D; ++d) REQUIRE(wire(kv, b, r, d) == direct(kv, b, row0 + r, d));
    }
    HostT4 branch("branch", 2, B, rows, D);
    Kokkos::deep_copy(branch, std::nan(""));
    expand_block<Exec, double>(exec, wire, runs(part), rows, branch);
    exec.fence();
    for (int kv = 0; kv < 2; ++kv)
      for (int b = 0; b < B; ++b)
        for (std::int64_t r = 0; r < rows; ++r)
          for (int d = 0; d < D; ++d) REQUIRE(branch(kv, b, r, d) == direct(kv, b, row0 + r, d));
    if (recv.branch_reads_wire(i)) continue;
    // ... and a piece of rows at a time (Exchange::branch_piece_rows, and a
    // random piece length): each piece expanded alone is its rows of the
    // part, and the tasks cut to a piece's keys (tasks_in_key_rows) read,
    // for every (task, key position) of the branch exactly once over the
    // pieces, the row the uncut task read.
    std::map<std::tuple<int, std::int64_t, std::int64_t>, std::int64_t> row_of_key;
    for (const BlockTask &task : recv.tasks[std::size_t(i)])
      for (int k = 0; k < task.num_key_runs; ++k)
        for (std::int64_t c = 0; c < task.key_runs[k].count; ++c)
          row_of_key[{task.head, task.q_pos0, task.key_runs[k].pos0 + c * task.stride}] =
              task.key_runs[k].block_row + c;
    std::vector<BlockTask> part_tasks = recv.tasks[std::size_t(i)];
    for (BlockTask &task : part_tasks)
      for (int k = 0; k < task.num_key_runs; ++k) task.key_runs[k].block_row -= row0;
    for (const std::int64_t piece :
         {recv.branch_piece_rows(i), std::uniform_int_distribution<std::int64_t>(1, rows)(rng)}) {
      REQUIRE(piece >= 1);
      std::size_t keys_read = 0;
      for (std::int64_t lo = 0; lo < rows; lo += piece) {
        const std::int64_t hi = std::min(rows, lo + piece);
        const std::vector<ExpandRun> piece_runs = recv.branch_expand(i, lo, hi);
        HostT4 cut("piece", 2, B, hi - lo, D);
        Kokkos::deep_copy(cut, std::nan(""));
        expand_block<Exec, double>(exec, wire, runs(piece_runs), hi - lo, cut);
        exec.fence();
        for (int kv = 0; kv < 2; ++kv)
          for (int b = 0; b < B; ++b)
            for (std::int64_t r = lo; r < hi; ++r)
              for (int d = 0; d < D; ++d)
                REQUIRE(cut(kv, b, r - lo, d) == direct(kv, b, row0 + r, d));
        for (const BlockTask &task : tasks_in_key_rows(part_tasks, lo, hi))
          for (int k = 0; k < task.num_key_runs; ++k) {
            const KeyRun &run = task.key_runs[k];
            REQUIRE(run.count >= 1);
            REQUIRE(run.block_row >= 0);
            REQUIRE(run.block_row + run.count <= hi - lo);
            for (std::int64_t c = 0; c < run.count; ++c) {
              const auto at = row_of_key.find({task.head, task.q_pos0, run.pos0 + c * task.stride});
              REQUIRE(at != row_of_key.end());
              ++keys_read;
              for (int kv = 0; kv < 2; ++kv)
                for (int b = 0; b < B; ++b)
                  for (int d = 0; d < D; ++d)
                    REQUIRE(cut(kv, b, run.block_row + c, d) == direct(kv, b, at->second, d));
            }
          }
      }
      REQUIRE(keys_read == row_of_key.size());
    }
  }
  return reading_wire;
}

} // namespace

TEST_CASE("traffic: each needed (kv head, row) crosses once, by brute force", "[ring][traffic]") {
  std::mt19937_64 rng(1414);
  int deduplicated = 0, expanded = 0, reading_wire = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const TrafficCase c = random_case(rng);
    const LiteralPattern &lit = c.lit;
    const int P = int(std::uniform_int_distribution<int>(1, 8)(rng));
    for (const bool zigzag : {false, true}) {
      const Partition part(zigzag ? PartitionKind::zigzag : PartitionKind::contiguous, lit.N, P);
      for (int p = 0; p < P; ++p)
        for (int j = 0; j < P; ++j) {
          if (j == p) continue;
          const auto needed = needed_rows(lit, P, zigzag, p, j);
          const Exchange recv = plan_exchange(c.pattern, part, p, j, true);
          const Exchange send = plan_exchange(c.pattern, part, p, j, false);
          INFO("N=" << lit.N << " H=" << lit.H << " Hkv=" << lit.Hkv << " G=" << lit.w.size()
                    << " P=" << P << (zigzag ? " zigzag" : " contiguous")
                    << (lit.causal ? " causal" : "") << " receiver " << p << " source " << j);
          REQUIRE(recv.rows == std::int64_t(needed.size()));
          REQUIRE(send.rows == recv.rows);
          REQUIRE(recv.empty() == needed.empty()); // a hop with no needed row is skipped
          // the wire holds each needed row once, in the order the receiver expects
          std::set<std::pair<int, std::int64_t>> packed;
          std::int64_t row = 0;
          REQUIRE(send.pack.size() == recv.pack.size());
          for (std::size_t x = 0; x < send.pack.size(); ++x) {
            const PackRun &run = send.pack[x];
            REQUIRE(run.block_row == row);
            REQUIRE(run.src_row0 == recv.pack[x].src_row0);
            REQUIRE(run.stride == recv.pack[x].stride);
            row += run.count;
            for (std::int64_t k = 0; k < run.count; ++k) {
              const std::int64_t pos = part.global_position(j, run.src_row0 + k * run.stride);
              REQUIRE(packed.insert({run.kv_head, pos}).second);
            }
          }
          REQUIRE(packed == needed);
          if (recv.block_rows > recv.rows) ++deduplicated;
          if (recv.expands()) ++expanded;
          if (!recv.empty())
            reading_wire += check_expand(recv, send, part.local_size(j), lit.Hkv, rng);
        }
    }
  }
  // the cases exercise rows read by several branches or heads
  CHECK(deduplicated > 20);
  CHECK(expanded > 20);
  CHECK(reading_wire > 5); // and branches whose part is the wire itself
}

TEST_CASE("traffic: the issue's dilated deck sends 402,653,184 bytes in one pass",
          "[ring][traffic]") {
  // N 65,536, 4 heads, D 64, float32, segments 16,384 / 32,768 / 65,536 at
  // rates 1 / 2 / 4, mixture, 8 contiguous members. The unique needed rows,
  // counted by brute-force enumeration of SPEC 2 outside this project, are
  // 402,653,184 bytes; a copy per branch was 570,425,344.
  const std::int64_t N = 65536;
  const Pattern pattern =
      Pattern::dilated(N, 4, 4, false, Mixing::mixture, {16384, 32768, 65536}, {1, 2, 4});
  const Partition part(PartitionKind::contiguous, N, 8);
  std::int64_t wire = 0, block = 0;
  for (int p = 0; p < 8; ++p)
    for (int j = 0; j < 8; ++j)
      if (j != p) {
        const Exchange ex = plan_exchange(pattern, part, p, j, true);
        wire += ex.rows;
        block += ex.block_rows;
      }
  const std::int64_t row_bytes = 2 * 1 * 64 * 4;
  CHECK(wire * row_bytes == 402653184);
  CHECK(block * row_bytes == 570425344); // what the kernels read after expanding
}

TEST_CASE("traffic: dense wires are the blocks (nothing to expand)", "[ring][traffic]") {
  for (const bool causal : {false, true})
    for (const PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag}) {
      const Pattern pattern = Pattern::dense(1000, 8, 2, causal);
      const Partition part(kind, 1000, 4);
      for (int p = 0; p < 4; ++p)
        for (int j = 0; j < 4; ++j) {
          const Exchange ex = plan_exchange(pattern, part, p, j, true);
          CHECK(ex.rows == ex.block_rows);
          CHECK_FALSE(ex.expands());
        }
    }
}
