// The backward pass (docs/SPEC.md section 7) against the independent float64 reference of
// RingAttn_BackwardReference.hpp, which finite differences check first; on
// every enabled backend, host fast path and portable kernel, single member
// and simulated rings (R = 1, 3, 4, both partitions), run-to-run identical.
#include <catch2/catch.hpp>

#include "RingAttn_BackwardCase.hpp"
#include "RingAttn_TestSpaces.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

using namespace ringattn;
using namespace ringattn::test;

namespace {
constexpr double tol_grad = 1e-4; // docs/SPEC.md section 7: float32 inputs in [-1, 1)

template <class ExecSpace, class Scalar>
void check_gradients(const Problem &p, const RingOptions &options, double tol, unsigned seed) {
  INFO(p.describe());
  std::mt19937_64 rng(seed);
  const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
  const Gradients ref =
      reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
  const Gradients got = run_api_backward<ExecSpace, Scalar>(p, dout, options);
  CHECK(max_abs_error(got.dq, ref.dq) <= tol);
  CHECK(max_abs_error(got.dk, ref.dk) <= tol);
  CHECK(max_abs_error(got.dv, ref.dv) <= tol);
}
} // namespace

TEST_CASE("backward reference: finite differences of sum(O * dO)", "[backward][reference]") {
  // Tiny cases: dense, causal GQA, a mixture where keys are kept by two
  // branches, head_groups with rows that see nothing.
  const std::vector<Problem> cases = {
      make_problem(5, 2, 1, 3, false, false, Mixing::mixture, {}, {}, 11),
      make_problem(6, 2, 1, 2, true, false, Mixing::mixture, {}, {}, 12),
      make_problem(7, 2, 2, 3, false, true, Mixing::mixture, {2, 4, 7}, {1, 2, 2}, 13),
      make_problem(7, 3, 1, 2, true, true, Mixing::head_groups, {3, 7}, {3, 2}, 14),
  };
  for (const Problem &p : cases) {
    INFO(p.describe());
    std::mt19937_64 rng(5);
    const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
    const LiteralPattern lit = p.literal();
    const double scale = p.effective_scale();
    const Gradients g = reference_gradients(lit, p.B, p.D, scale, p.q, p.k, p.v, dout);
    const double eps = 1e-6;
    auto check = [&](int which, const std::vector<double> &grad) {
      for (std::size_t e = 0; e < grad.size(); ++e) {
        std::vector<double> x[3] = {p.q, p.k, p.v};
        x[which][e] += eps;
        const double up = reference_loss(lit, p.B, p.D, scale, x[0], x[1], x[2], dout);
        x[which][e] -= 2 * eps;
        const double down = reference_loss(lit, p.B, p.D, scale, x[0], x[1], x[2], dout);
        INFO("tensor " << which << " element " << e);
        CHECK(std::abs((up - down) / (2 * eps) - grad[e]) <= 1e-7);
      }
    };
    check(0, g.dq);
    check(1, g.dk);
    check(2, g.dv);
  }
}

TEMPLATE_LIST_TEST_CASE("backward: random shapes and patterns match the float64 reference",
                        "[backward][backend]", ExecSpaces) {
  std::mt19937_64 rng(20261201);
  for (int trial = 0; trial < 40; ++trial) {
    const Problem p = random_problem(rng, trial < 30 ? 40 : 250);
    check_gradients<TestType, float>(p, {}, tol_grad, unsigned(trial));
  }
}

TEMPLATE_LIST_TEST_CASE("backward: the portable kernel matches the reference",
                        "[backward][backend]", ExecSpaces) {
  std::mt19937_64 rng(4242);
  RingOptions options;
  options.tiling = small_portable_tiles<TestType>();
  for (int trial = 0; trial < 30; ++trial) {
    const Problem p = random_problem(rng, trial < 20 ? 60 : 300);
    check_gradients<TestType, float>(p, options, tol_grad, unsigned(100 + trial));
  }
}

TEMPLATE_LIST_TEST_CASE("backward: long sequences, ragged segments, GQA, tile edges",
                        "[backward][backend]", ExecSpaces) {
  std::mt19937_64 rng(8);
  const ProblemShape shapes[] = {
      {1200, false, true, Mixing::mixture, {}, {}, 4, 2, 64},
      {700, false, false, Mixing::mixture, {}, {}, 1, 1, 128},
      {1501, true, false, Mixing::mixture, {100, 300, 1000}, {1, 3, 10}, 4, 2, 16},
      {1300, true, true, Mixing::head_groups, {129, 511, 1300}, {1, 7, 1300}, 5, 5, 32},
      {1025, true, true, Mixing::mixture, {1025, 256}, {1, 2}, 2, 1, 64},
  };
  for (const ProblemShape &s : shapes) {
    const Problem p = s.problem(rng);
    check_gradients<TestType, float>(p, {}, tol_grad, 77);
    RingOptions portable;
    portable.tiling = small_portable_tiles();
    check_gradients<TestType, float>(p, portable, tol_grad, 78);
  }
}

TEMPLATE_LIST_TEST_CASE("backward: float64 storage computes in float64", "[backward][backend]",
                        ExecSpaces) {
  std::mt19937_64 rng(12);
  for (int trial = 0; trial < 10; ++trial) {
    const Problem p = random_problem(rng, 100);
    check_gradients<TestType, double>(p, {}, 1e-10, unsigned(200 + trial));
  }
}

TEMPLATE_LIST_TEST_CASE("backward: rows that see no key get dQ = 0, unseen keys dK = dV = 0",
                        "[backward][backend]", ExecSpaces) {
  // head_groups with r = w: most (row, head) pairs see nothing, and most
  // keys of a kv head are seen by no query.
  Problem p =
      make_problem(50, 3, 1, 8, true, true, Mixing::head_groups, {7, 10, 50}, {7, 10, 50}, 9);
  for (const RingOptions &options : {RingOptions{}, [] {
                                       RingOptions o;
                                       o.tiling = small_portable_tiles();
                                       return o;
                                     }()}) {
    std::mt19937_64 rng(3);
    const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
    const Gradients got = run_api_backward<TestType, float>(p, dout, options);
    const LiteralPattern lit = p.literal();
    std::int64_t empty_rows = 0, unseen_keys = 0;
    for (int h = 0; h < p.H; ++h)
      for (std::int64_t t = 0; t < p.N; ++t) {
        bool sees = false;
        for (std::size_t i = 0; i < lit.w.size(); ++i)
          for (std::int64_t u = 0; u < p.N; ++u) sees = sees || lit.keeps(t, u, h, int(i));
        if (sees) continue;
        ++empty_rows;
        for (int d = 0; d < p.D; ++d) REQUIRE(got.dq[(t * p.H + h) * p.D + d] == 0.0);
      }
    for (std::int64_t u = 0; u < p.N; ++u) {
      bool seen = false;
      for (int h = 0; h < p.H; ++h)
        for (std::size_t i = 0; i < lit.w.size(); ++i)
          for (std::int64_t t = 0; t < p.N; ++t) seen = seen || lit.keeps(t, u, h, int(i));
      if (seen) continue;
      ++unseen_keys;
      for (int d = 0; d < p.D; ++d) {
        REQUIRE(got.dk[u * p.D + d] == 0.0);
        REQUIRE(got.dv[u * p.D + d] == 0.0);
      }
    }
    CHECK(empty_rows > 0);
    CHECK(unseen_keys > 0);
    check_gradients<TestType, float>(p, options, tol_grad, 3);
  }
}

TEMPLATE_LIST_TEST_CASE("backward: simulated rings match the reference and repeat bitwise",
                        "[backward][ring][backend]", ExecSpaces) {
  std::mt19937_64 rng(99);
  for (const Problem &p : standard_problems()) {
    const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
    const Gradients ref =
        reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
      for (int R : {1, 3, 4})
        for (bool portable : {false, true}) {
          INFO(p.describe() << " R=" << R
                            << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous")
                            << (portable ? " portable" : ""));
          RingOptions opts;
          opts.partition = kind;
          opts.members = R;
          if (portable) opts.tiling = small_portable_tiles();
          const Gradients a = run_api_backward<TestType, float>(p, dout, opts);
          CHECK(max_abs_error(a.dq, ref.dq) <= tol_grad);
          CHECK(max_abs_error(a.dk, ref.dk) <= tol_grad);
          CHECK(max_abs_error(a.dv, ref.dv) <= tol_grad);
          const Gradients b = run_api_backward<TestType, float>(p, dout, opts);
          CHECK(identical(a.dq, b.dq));
          CHECK(identical(a.dk, b.dk));
          CHECK(identical(a.dv, b.dv));
        }
  }
}

TEMPLATE_LIST_TEST_CASE("backward: member by member through a BackwardMemberIO gives the same bits",
                        "[backward][ring][memberio][backend]", ExecSpaces) {
  // The bounded-memory backward (two passes over the ring) sums in the
  // order of the backward over whole-sequence views: the same bits, and
  // so the reference's accuracy.
  std::mt19937_64 rng(7);
  for (const Problem &p : standard_problems()) {
    const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
    const Gradients ref =
        reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
      for (int R : {1, 3, 4}) {
        INFO(p.describe() << " R=" << R
                          << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous"));
        RingOptions opts;
        opts.partition = kind;
        opts.members = R;
        const Gradients views = run_api_backward<TestType, float>(p, dout, opts);
        const Gradients io = run_api_backward<TestType, float>(p, dout, opts, true);
        CHECK(max_abs_error(io.dq, ref.dq) <= tol_grad);
        CHECK(max_abs_error(io.dk, ref.dk) <= tol_grad);
        CHECK(max_abs_error(io.dv, ref.dv) <= tol_grad);
        CHECK(identical(io.dq, views.dq));
        CHECK(identical(io.dk, views.dk));
        CHECK(identical(io.dv, views.dv));
        // 16 bits: gradients rounded once, from the same float sums
        const Gradients v16 = run_api_backward<TestType, bfloat16_t>(p, dout, opts);
        const Gradients io16 = run_api_backward<TestType, bfloat16_t>(p, dout, opts, true);
        CHECK(identical(io16.dq, v16.dq));
        CHECK(identical(io16.dk, v16.dk));
        CHECK(identical(io16.dv, v16.dv));
      }
  }
}

TEST_CASE("backward: wrong shapes are rejected", "[backward]") {
  using Exec = Kokkos::DefaultExecutionSpace;
  using T4 = Tensor4<float, Exec::memory_space>;
  RingAttention<Exec, float> attn(Pattern::dense(8, 2, 1, false));
  T4 q("q", 1, 8, 2, 4), kv("kv", 1, 8, 1, 4), dq("dq", 1, 8, 2, 4), bad("bad", 1, 8, 2, 4);
  Tensor3<float, Exec::memory_space> lse("lse", 1, 2, 8);
  CHECK_THROWS_WITH(attn.backward(q, kv, kv, q, lse, q, dq, bad, kv),
                    Catch::Contains("dk and dv must have the shape of k"));
  CHECK_THROWS_WITH(attn.backward(q, kv, kv, q, lse, kv, dq, kv, kv),
                    Catch::Contains("o and dout must have the shape of q"));
}

TEST_CASE("backward: ring traffic is the forward's rows plus the same rows of dK/dV",
          "[backward][ring]") {
  using Exec = Kokkos::DefaultExecutionSpace;
  using T4 = Tensor4<float, Exec::memory_space>;
  int fewer_than_blocks = 0; // problems whose wire is smaller than the blocks
  for (const Problem &p : standard_problems())
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag}) {
      INFO(p.describe() << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous"));
      RingOptions opts;
      opts.partition = kind;
      opts.members = 4;
      RingAttention<Exec, float> attn(p.pattern(), opts);
      const auto B = std::size_t(p.B), N = std::size_t(p.N), D = std::size_t(p.D);
      T4 q("q", B, N, std::size_t(p.H), D), kv("kv", B, N, std::size_t(p.Hkv), D),
          o("o", B, N, std::size_t(p.H), D), dq("dq", B, N, std::size_t(p.H), D),
          dk("dk", B, N, std::size_t(p.Hkv), D), dv("dv", B, N, std::size_t(p.Hkv), D);
      Tensor3<float, Exec::memory_space> lse("lse", B, std::size_t(p.H), N);
      const RingStats fwd = attn.forward(q, kv, kv, o, lse);
      const RingStats bwd = attn.backward(q, kv, kv, o, lse, o, dq, dk, dv);
      CHECK(bwd.hops_made == fwd.hops_made);
      CHECK(bwd.hops_skipped == fwd.hops_skipped);
      std::int64_t f = 0, b = 0;
      for (int m = 0; m < 4; ++m) {
        f += fwd.bytes_sent[m];
        b += bwd.bytes_sent[m];
      }
      CHECK(f > 0);
      // The backward's K/V cross on the forward's wire (each needed (kv
      // head, row) once) and their float32 dK/dV partials come back on the
      // same wire: twice the forward's bytes, whatever the kernels' block
      // layout holds.
      const Partition part(kind, p.N, 4);
      std::int64_t block_bytes = 0;
      for (int r = 0; r < 4; ++r)
        for (int j = 0; j < 4; ++j)
          if (r != j)
            block_bytes += Details::plan_exchange(p.pattern(), part, r, j, false).block_rows * 2 *
                           std::int64_t(p.B) * std::int64_t(p.D) * std::int64_t(sizeof(float));
      CHECK(b == 2 * f);
      fewer_than_blocks += f < block_bytes ? 1 : 0;
    }
  CHECK(fewer_than_blocks > 0); // the problems include rows read twice
}

TEST_CASE("backward: the fused pass's task sets partition the tasks and own their key runs",
          "[backward][ring]") {
  // Brute force over every (receiver, source) exchange of random patterns:
  // each task is in exactly one set, no key run is read from two sets, and
  // the tasks of one set are connected through shared runs (so the sets are
  // the finest partition the fused kernel can run without a race).
  std::mt19937_64 rng(515);
  int sets_seen = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const Problem p = random_problem(rng, 200);
    const int R = 1 + trial % 5;
    const Partition part(trial % 2 ? PartitionKind::zigzag : PartitionKind::contiguous, p.N, R);
    const int group = p.H / p.Hkv; // query heads per kv head
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < R; ++j)
        for (const bool in_place : {false, true}) {
          // the tasks' runs as rows of a block, or of the source's K/V read
          // in place (the MPI backward's own block), where kv heads share
          // row numbers and a run's rows are `stride` apart
          Details::Exchange ex = Details::plan_exchange(p.pattern(), part, r, j, true);
          if (in_place) Details::read_keys_in_place(ex, false);
          // every (kv head, row) a task's runs touch
          const auto rows_of = [&](const Details::BlockTask &task) {
            std::set<std::pair<int, std::int64_t>> rows;
            for (int k = 0; k < task.num_key_runs; ++k) {
              const Details::KeyRun &run = task.key_runs[k];
              for (std::int64_t c = 0; c < run.count; ++c)
                rows.emplace(in_place ? task.head / group : 0,
                             run.block_row + c * (in_place ? task.stride : 1));
            }
            return rows;
          };
          for (const auto &tasks : ex.tasks) {
            const Details::FusedWork work = Details::make_fused_work(tasks, group);
            const std::vector<double> pairs = Details::fused_set_work(tasks, work);
            REQUIRE(pairs.size() == work.items.size());
            std::vector<int> set_of(tasks.size(), -1);
            for (std::size_t s = 0; s < work.items.size(); ++s)
              for (auto t = work.items[s].task_begin; t < work.items[s].task_end; ++t) {
                REQUIRE(set_of[std::size_t(work.task_order[std::size_t(t)])] == -1);
                set_of[std::size_t(work.task_order[std::size_t(t)])] = int(s);
              }
            // no (kv head, row) is written by two sets
            std::map<std::pair<int, std::int64_t>, int> row_set;
            for (std::size_t t = 0; t < tasks.size(); ++t) {
              REQUIRE(set_of[t] >= 0);
              for (const auto &row : rows_of(tasks[t])) {
                const auto [it, fresh] = row_set.emplace(row, set_of[t]);
                CHECK(it->second == set_of[t]);
              }
            }
            // connectivity: grow each set from its first task through
            // shared rows
            for (std::size_t s = 0; s < work.items.size(); ++s) {
              std::vector<bool> reached(tasks.size(), false);
              std::vector<std::int64_t> frontier{
                  work.task_order[std::size_t(work.items[s].task_begin)]};
              reached[std::size_t(frontier[0])] = true;
              while (!frontier.empty()) {
                const auto t = std::size_t(frontier.back());
                frontier.pop_back();
                const auto mine = rows_of(tasks[t]);
                for (std::size_t u = 0; u < tasks.size(); ++u) {
                  if (reached[u]) continue;
                  bool share = false;
                  for (const auto &row : rows_of(tasks[u])) share |= mine.count(row) > 0;
                  if (share) {
                    reached[u] = true;
                    frontier.push_back(std::int64_t(u));
                  }
                }
              }
              for (auto t = work.items[s].task_begin; t < work.items[s].task_end; ++t)
                CHECK(reached[std::size_t(work.task_order[std::size_t(t)])]);
              ++sets_seen;
            }
            // the dK/dV pass's key work: each (kv head, row) in the items
            // of one run, whose listed tasks all read that kv head
            const Details::KeyWork key_work = Details::make_key_work(tasks, 4, group);
            std::map<std::pair<int, std::int64_t>, std::int64_t> row_run; // -> first row
            for (const Details::KeyWorkItem &item : key_work.items) {
              const int g =
                  tasks[std::size_t(key_work.task_index[std::size_t(item.task_begin)])].head /
                  (in_place ? group : p.H);
              for (auto i = item.task_begin; i < item.task_end; ++i)
                CHECK(tasks[std::size_t(key_work.task_index[std::size_t(i)])].head /
                          (in_place ? group : p.H) ==
                      g);
              for (std::int64_t c = item.k_begin; c < std::min(item.run.count, item.k_begin + 4);
                   ++c) {
                const auto row =
                    std::make_pair(g, item.run.block_row + c * (in_place ? item.stride : 1));
                const auto [it, fresh] = row_run.emplace(row, item.run.block_row);
                CHECK(it->second == item.run.block_row);
              }
            }
          }
        }
  }
  CHECK(sets_seen > 100);
  // One thread always takes the fused pass; on more, its makespan (sets
  // dealt in order to the least loaded thread) must stay under 1.4 x the
  // evenly shared total.
  CHECK(Details::use_fused_backward({5.0}, 1, 1));
  CHECK_FALSE(Details::use_fused_backward({5.0}, 1, 2));           // one set: 5 vs 1.4 x 2.5
  CHECK(Details::use_fused_backward({5.0, 5.0}, 1, 2));            // 5 < 7
  CHECK(Details::use_fused_backward({5.0}, 2, 2));                 // two batch entries
  CHECK_FALSE(Details::use_fused_backward({8.0, 1.0, 1.0}, 1, 2)); // 8 vs 7
  CHECK(Details::use_fused_backward({6.0, 2.0, 2.0, 2.0}, 1, 2));  // 6 < 8.4
}

TEST_CASE("backward: split task sets cover each set's query tiles once, balanced by pairs",
          "[backward][ring]") {
  // For fewer task sets than threads the fused pass cuts each set into
  // chunks of consecutive query tiles. Brute force: the chunks of a set
  // cover its tiles [0, T) in order, chunk c tagged c < chunks, and no
  // chunk holds more than its share of the set's kept pairs plus one tile's
  // (pairs counted here by enumerating positions).
  std::mt19937_64 rng(516);
  int split_sets = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const Problem p = random_problem(rng, 200);
    const int R = 1 + trial % 3;
    const Partition part(trial % 2 ? PartitionKind::zigzag : PartitionKind::contiguous, p.N, R);
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < R; ++j) {
        const Details::Exchange ex = Details::plan_exchange(p.pattern(), part, r, j, true);
        for (const auto &tasks : ex.tasks) {
          const Details::FusedWork work = Details::make_fused_work(tasks, p.H / p.Hkv);
          for (const int chunks : {2, 3})
            for (const int q_tile : {4, 16}) {
              const std::vector<Details::FusedWorkItem> split =
                  Details::split_fused_work(tasks, work, chunks, q_tile, p.causal);
              for (const Details::FusedWorkItem &set : work.items) {
                // the set's tiles' pairs, brute force
                std::vector<double> tile_pairs;
                for (auto t = set.task_begin; t < set.task_end; ++t) {
                  const Details::BlockTask &task =
                      tasks[std::size_t(work.task_order[std::size_t(t)])];
                  for (std::int64_t q0 = 0; q0 < task.q_count; q0 += q_tile) {
                    double pairs = 0;
                    for (std::int64_t c = q0; c < std::min(task.q_count, q0 + q_tile); ++c) {
                      const std::int64_t qpos = task.q_pos0 + c * task.stride;
                      for (int k = 0; k < task.num_key_runs; ++k)
                        for (std::int64_t u = 0; u < task.key_runs[k].count; ++u)
                          pairs += !p.causal || task.key_runs[k].pos0 + u * task.stride <= qpos;
                    }
                    tile_pairs.push_back(pairs);
                  }
                }
                double total = 0, largest = 0;
                for (double x : tile_pairs) {
                  total += x;
                  largest = std::max(largest, x);
                }
                std::int64_t next = 0;
                int chunk = 0;
                for (const Details::FusedWorkItem &item : split) {
                  if (item.task_begin != set.task_begin) continue;
                  CHECK(item.task_end == set.task_end);
                  CHECK(item.tile_begin == next);
                  CHECK(item.tile_end > item.tile_begin);
                  CHECK(item.chunk == chunk);
                  CHECK(item.chunk < chunks);
                  double pairs = 0;
                  for (auto i = item.tile_begin; i < item.tile_end; ++i)
                    pairs += tile_pairs[std::size_t(i)];
                  CHECK(pairs <= total / chunks + largest);
                  next = item.tile_end;
                  ++chunk;
                }
                CHECK(next == std::int64_t(tile_pairs.size()));
                split_sets += chunk > 1;
              }
            }
        }
      }
  }
  CHECK(split_sets > 50);
}

TEST_CASE("backward reads Q, K, V, O and dO as subviews of packed tensors", "[backward][memory]") {
  // A fused QKV projection [B, N, H + 2 Hkv, D] and O, dO side by side in
  // one [B, N, 3 H, D] (a third of it unused): every input is a strided
  // subview, Q's rows and dO's a different number of values apart; the
  // simulated ring copies each member's rows from them (tstMpiBackward
  // checks the MPI ring's kernels reading them in place), on the host path
  // and the portable kernels, one member and a zigzag ring.
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  std::mt19937_64 rng(20261203);
  const Problem p =
      ProblemShape{384, true, true, Mixing::mixture, {64, 128}, {1, 2}, 4, 2, 16}.problem(rng);
  const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
  const Gradients ref =
      reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
  const PackedQkv<Mem> packed(p);
  const auto &q = packed.q, &k = packed.k, &v = packed.v;
  Kokkos::View<float ****, Kokkos::LayoutRight, Mem> odo("odo", p.B, p.N, 3 * p.H, p.D);
  for (std::int64_t b = 0; b < p.B; ++b)
    for (std::int64_t t = 0; t < p.N; ++t)
      for (int h = 0; h < p.H; ++h)
        for (int d = 0; d < p.D; ++d) {
          const std::size_t i = ((b * p.N + t) * p.H + h) * p.D + d;
          odo(b, t, p.H + h, d) = float(dout[i]);
        }
  const auto all = Kokkos::ALL;
  const auto o = Kokkos::subview(odo, all, all, Kokkos::make_pair(0, p.H), all);
  const auto d_o = Kokkos::subview(odo, all, all, Kokkos::make_pair(p.H, 2 * p.H), all);
  REQUIRE(d_o.stride_1() == std::size_t(3 * p.H * p.D));
  REQUIRE(q.stride_1() != d_o.stride_1());
  auto max_error = [](const Tensor4<float, Mem> &got, const std::vector<double> &want) {
    double err = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
      err = std::max(err, std::abs(double(got.data()[i]) - want[i]));
    return err;
  };
  for (bool portable : {false, true})
    for (int R : {1, 3}) {
      INFO("R " << R << " portable " << portable);
      RingOptions options;
      options.members = R;
      options.partition = R == 3 ? PartitionKind::zigzag : PartitionKind::contiguous;
      Tiling t = default_tiling<Exec>(p.D);
      t.portable = portable;
      options.tiling = t;
      const RingAttention<Exec, float> attention(p.pattern(), options);
      Tensor4<float, Mem> o_run("o", p.B, p.N, p.H, p.D);
      Tensor3<float, Mem> lse("lse", p.B, p.H, p.N);
      attention.forward(q, k, v, o_run, lse);
      Kokkos::deep_copy(o, o_run);
      Tensor4<float, Mem> dq("dq", p.B, p.N, p.H, p.D), dk("dk", p.B, p.N, p.Hkv, p.D),
          dv("dv", p.B, p.N, p.Hkv, p.D);
      attention.backward(q, k, v, o, lse, d_o, dq, dk, dv);
      CHECK(max_error(dq, ref.dq) <= tol_grad);
      CHECK(max_error(dk, ref.dk) <= tol_grad);
      CHECK(max_error(dv, ref.dv) <= tol_grad);
    }
}

TEST_CASE("backward: the fused sweep in pieces (message progress) repeats one launch bitwise",
          "[backward][ring]") {
  // The MPI ring progresses messages between sequential pieces of the host
  // path's fused sweep (fused_work_pieces): each set's query tiles still run
  // in order into the same partials, so dQ and the partial dK/dV must be
  // bitwise those of one launch, on every standard problem (one member's
  // own block, threads as the backend has them).
  using Exec = Kokkos::DefaultHostExecutionSpace;
  using Mem = Exec::memory_space;
  using T4 = Tensor4<float, Mem>;
  std::mt19937_64 rng(5);
  const Exec exec;
  for (const Problem &p : standard_problems()) {
    INFO(p.describe());
    auto upload = [&](const std::vector<double> &x, int heads) {
      T4 view("t", std::size_t(p.B), std::size_t(p.N), std::size_t(heads), std::size_t(p.D));
      for (std::size_t i = 0; i < x.size(); ++i) view.data()[i] = float(x[i]);
      return view;
    };
    const T4 q = upload(p.q, p.H), k = upload(p.k, p.Hkv), v = upload(p.v, p.Hkv),
             d_o = upload(random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D), p.H);
    T4 o("o", std::size_t(p.B), std::size_t(p.N), std::size_t(p.H), std::size_t(p.D));
    Tensor3<float, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H), std::size_t(p.N)),
        delta("delta", std::size_t(p.B), std::size_t(p.H), std::size_t(p.N));
    Tiling tiling = default_tiling<Exec>(p.D);
    tiling.q_tile = 16; // several query tiles per set, so several pieces
    tiling.k_tile = 32;
    RingOptions options;
    options.tiling = tiling;
    RingAttention<Exec, float>(p.pattern(), options).forward(q, k, v, o, lse);
    Details::backward_delta<Exec, float>(exec, o, d_o, delta);
    const Partition part(PartitionKind::contiguous, p.N, 1);
    Details::BackwardMember<Exec, float> member(p.pattern(), part, 0, float(p.effective_scale()),
                                                tiling);
    const Details::HopSchedule<Mem> ex =
        Details::make_hop_schedule<Mem>(exec, Details::plan_exchange(p.pattern(), part, 0, 0, true),
                                        tiling, Details::ScheduleUse::backward);
    T4 block("block", 2, std::size_t(p.B), std::size_t(ex.rows), std::size_t(p.D));
    member.pack(exec, k, v, ex.pack, block);
    const Details::BackwardViews<Exec, float> in{
        q, d_o, lse, delta, Details::KeyValueRows<Mem, float>::of_block(block)};
    std::vector<float> first[2];
    int pieces = 0;
    for (bool in_pieces : {false, true}) {
      T4 dq("dq", std::size_t(p.B), std::size_t(p.N), std::size_t(p.H), std::size_t(p.D));
      T4 partial("partial", 2, std::size_t(p.B), std::size_t(ex.rows), std::size_t(p.D));
      Details::BlockBuffer<float, Mem> block_partial("block_partial");
      member.consume(exec, in, ex, dq, partial, block_partial,
                     in_pieces ? std::function<void()>([&] { ++pieces; })
                               : std::function<void()>{});
      exec.fence();
      const std::vector<float> got_dq(dq.data(), dq.data() + dq.size());
      const std::vector<float> got_partial(partial.data(), partial.data() + partial.size());
      if (!in_pieces) {
        first[0] = got_dq;
        first[1] = got_partial;
      } else {
        CHECK(got_dq == first[0]);
        CHECK(got_partial == first[1]);
      }
    }
#ifdef RINGATTN_ENABLE_BLAS
    CHECK(pieces > 1); // the host path took the fused sweep, in pieces
#endif
  }
}
