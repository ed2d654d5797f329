// The MPI ring backward (docs/SPEC.md section 7): every rank holds only its own rows and
// ends with dQ, dK, dV of those rows, equal to the float64 reference within
// 1e-4 for dense, dilated (both mixings), causal and GQA problems, both
// partitions, overlap on and off; a second run is bitwise identical.
#include <catch2/catch.hpp>

#include "RingAttn_BackwardReference.hpp"
#include "RingAttn_MpiTestCase.hpp"
#include <ring/detail/RingAttn_Exchange.hpp>

#include <mpi.h>

#include <functional>
#include <optional>
#include <random>

using namespace ringattn;
using namespace ringattn::test;

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

/// The local view's values and the matching entries of a global reference.
template <class Scalar>
void collect(const Tensor4<Scalar, Mem> &local, const std::vector<double> &global, const Problem &p,
             int heads, const Partition &part, int rank, std::vector<double> &mine,
             std::vector<double> &ref) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), local);
  mine.clear();
  ref.clear();
  for (int b = 0; b < p.B; ++b)
    for (std::int64_t row = 0; row < std::int64_t(h.extent(1)); ++row) {
      const std::int64_t t = part.global_position(rank, row);
      for (int x = 0; x < heads; ++x)
        for (int d = 0; d < p.D; ++d) {
          mine.push_back(double(h(b, row, x, d)));
          ref.push_back(global[((b * p.N + t) * heads + x) * p.D + d]);
        }
    }
}

/// Float: within 1e-4 of the float64 gradients. 16-bit storage (inputs and
/// dO rounded): within 2e-2 (bfloat16) or 3e-3 (float16) of max(1, the
/// largest gradient), as tstHalfAttention.cpp in one process.
/// With `inspect`, the passes run on a plan made once, which `inspect`
/// then sees.
template <class Scalar = float>
void check_rank_gradients(MPI_Comm comm, const Problem &p, PartitionKind kind, bool overlap,
                          const Tiling *tiling = nullptr,
                          const std::function<void(const RingPlan<Exec, Scalar> &)> &inspect = {}) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  INFO(p.describe() << " P=" << size << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous")
                    << (overlap ? " overlap" : ""));
  std::mt19937_64 rng(2026);
  auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
  for (double &e : dout) e = double(float(Scalar(e))); // exact for float
  const Gradients ref =
      reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);

  const Partition part(kind, p.N, size);
  const std::int64_t n = part.local_size(rank);
  auto q = local_rows<Scalar>(p.q, p, p.H, part, rank);
  auto k = local_rows<Scalar>(p.k, p, p.Hkv, part, rank);
  auto v = local_rows<Scalar>(p.v, p, p.Hkv, part, rank);
  auto d_o = local_rows<Scalar>(dout, p, p.H, part, rank);
  auto make = [&](int heads) {
    return Tensor4<Scalar, Mem>("t", std::size_t(p.B), std::size_t(n), std::size_t(heads),
                                std::size_t(p.D));
  };
  auto o = make(p.H);
  Tensor3<accumulate_t<Scalar>, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H), std::size_t(n));
  RingOptions options;
  options.partition = kind;
  options.overlap = overlap;
  if (tiling) options.tiling = *tiling;
  if (p.scale > 0) options.scale = p.scale;
  RingAttention<Exec, Scalar> attention(p.pattern(), options);
  std::optional<RingPlan<Exec, Scalar>> plan;
  if (inspect) plan = attention.make_plan(comm, p.B, p.D);
  const RingStats forward =
      plan ? attention.forward(*plan, q, k, v, o, lse) : attention.forward(comm, q, k, v, o, lse);
  auto tolerance = [](const std::vector<double> &g) {
    if constexpr (!is_16bit_storage_v<Scalar>) return 1e-4;
    double m = 1;
    for (double x : g) m = std::max(m, std::abs(x));
    return (std::is_same_v<Scalar, bfloat16_t> ? 2e-2 : 3e-3) * m;
  };
  std::vector<double> first[3];
  for (int run = 0; run < 2; ++run) {
    auto dq = make(p.H), dk = make(p.Hkv), dv = make(p.Hkv);
    const RingStats backward = plan ? attention.backward(*plan, q, k, v, o, lse, d_o, dq, dk, dv)
                                    : attention.backward(comm, q, k, v, o, lse, d_o, dq, dk, dv);
    // Traffic (docs/SPEC.md section 7), over the ring: the forward's K/V
    // wire, each needed (kv head, row) once, plus the same rows of dK/dV in
    // the accumulate type (a receiver sends those back).
    std::int64_t sent[2] = {forward.bytes_sent[rank], backward.bytes_sent[rank]}, total[2];
    MPI_Allreduce(sent, total, 2, MPI_INT64_T, MPI_SUM, comm);
    CHECK(total[1] == total[0] / std::int64_t(sizeof(Scalar)) *
                          std::int64_t(sizeof(Scalar) + sizeof(accumulate_t<Scalar>)));
    CHECK(backward.hops_made == forward.hops_made);
    std::vector<double> mine, want;
    collect(dq, ref.dq, p, p.H, part, rank, mine, want);
    CHECK(max_abs_error(mine, want) <= tolerance(ref.dq));
    if (run == 0)
      first[0] = mine;
    else
      CHECK(mine == first[0]);
    collect(dk, ref.dk, p, p.Hkv, part, rank, mine, want);
    CHECK(max_abs_error(mine, want) <= tolerance(ref.dk));
    if (run == 0)
      first[1] = mine;
    else
      CHECK(mine == first[1]);
    collect(dv, ref.dv, p, p.Hkv, part, rank, mine, want);
    CHECK(max_abs_error(mine, want) <= tolerance(ref.dv));
    if (run == 0)
      first[2] = mine;
    else
      CHECK(mine == first[2]);
  }
  if (inspect) inspect(*plan);
}

} // namespace

TEST_CASE("MPI ring backward matches the reference on every rank's rows", "[mpi][backward]") {
  for (const Problem &p : standard_problems())
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
      for (bool overlap : {true, false}) check_rank_gradients(MPI_COMM_WORLD, p, kind, overlap);
}

TEST_CASE("MPI ring backward expands a piece of a branch's part at a time, or reads the wire",
          "[mpi][backward]") {
  // Two rate-1 branches that read every row of the wire (Exchange::reads_wire:
  // their partials go straight onto the wire's) and a rate-2 branch whose two
  // phases per kv head expand (its partial is summed onto the wire's): the
  // fused host sweep and the portable kernel, which both add onto a partial.
  const Problem p =
      make_problem(128, 4, 2, 8, false, true, Mixing::mixture, {64, 128, 128}, {1, 1, 2}, 6);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const Partition part(PartitionKind::contiguous, p.N, size);
  int reading = 0, expanding = 0;
  for (int source = 0; source < size; ++source) {
    if (source == rank) continue;
    const Details::Exchange ex = Details::plan_exchange(p.pattern(), part, rank, source, true);
    if (!ex.expands()) continue;
    for (int i = 0; i < 3; ++i)
      if (!ex.tasks[std::size_t(i)].empty()) ++(ex.branch_reads_wire(i) ? reading : expanding);
  }
  if (size == 4) { // member 1 from member 0: both rate-1 branches read the wire
    int counts[2] = {reading, expanding}, total[2];
    MPI_Allreduce(counts, total, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(total[0] >= 2);
    CHECK(total[1] >= 1);
  }
  // The plan's backward hops that expand go a piece of a branch's part at
  // a time (Exchange::branch_piece_rows), and the block partial holds the
  // largest piece, not a block; at 4 ranks some branch takes several pieces.
  const auto by_branch = [&](const RingPlan<Exec, float> &plan) {
    const auto &member = plan.schedule().members.front();
    std::int64_t part_rows = 0;
    int most_pieces = 0;
    for (int s = 1; s < size; ++s) {
      const Details::Exchange ex =
          Details::plan_exchange(p.pattern(), part, rank, (rank - s + size) % size, true);
      const auto &hop = member.backward[std::size_t(s)];
      CHECK(hop.by_branch == ex.expands());
      int pieces[3] = {0, 0, 0};
      for (const auto &branch : hop.branches) {
        part_rows = std::max(part_rows, branch.expand_rows);
        if (!branch.expands()) continue;
        CHECK(branch.expand_rows <= ex.branch_piece_rows(branch.branch));
        most_pieces = std::max(most_pieces, ++pieces[branch.branch]);
      }
    }
    CHECK(plan.schedule().block_partial.capacity_bytes() ==
          std::size_t(2 * p.B * part_rows * p.D) * sizeof(float));
    if (size == 4) {
      int most = 0;
      MPI_Allreduce(&most_pieces, &most, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      CHECK(most >= 2);
    }
  };
  const Tiling portable = small_portable_tiles<Exec>();
  for (bool overlap : {true, false}) {
    check_rank_gradients(MPI_COMM_WORLD, p, PartitionKind::contiguous, overlap, nullptr,
                         overlap ? by_branch
                                 : std::function<void(const RingPlan<Exec, float> &)>{});
    check_rank_gradients(MPI_COMM_WORLD, p, PartitionKind::contiguous, overlap, &portable);
  }
  check_rank_gradients(MPI_COMM_WORLD, p, PartitionKind::zigzag, true, &portable);
  check_rank_gradients<bfloat16_t>(MPI_COMM_WORLD, rounded_to<bfloat16_t>(p),
                                   PartitionKind::contiguous, true);
}

TEST_CASE("MPI ring backward in 16-bit storage", "[mpi][backward][half]") {
  for (const Problem &raw : standard_problems()) {
    check_rank_gradients<bfloat16_t>(MPI_COMM_WORLD, rounded_to<bfloat16_t>(raw),
                                     PartitionKind::zigzag, true);
    check_rank_gradients<float16_t>(MPI_COMM_WORLD, rounded_to<float16_t>(raw),
                                    PartitionKind::contiguous, true);
  }
}

TEST_CASE("MPI ring backward runs on a sub-communicator", "[mpi][backward]") {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
  const auto ps = standard_problems();
  check_rank_gradients(half, ps[2], PartitionKind::zigzag, true);
  check_rank_gradients(half, ps[3], PartitionKind::contiguous, true);
  MPI_Comm_free(&half);
}

TEST_CASE("MPI ring backward reads strided subviews of packed tensors", "[mpi][backward]") {
  // Each rank's Q, K, V are subviews of one packed [B, n, H + 2 Hkv, D]
  // projection, O and dO of one [B, n, 4 H, D] (half of it unused): rows of Q
  // and of dO a different number of values apart. The kernels read them in
  // place (the host path as CBLAS leading dimensions). Then K a tensor of
  // its own: K's and V's rows a different number of values apart too.
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (const Problem &p : {standard_problems()[1], standard_problems()[2]})
    for (const bool own_k : {false, true}) {
      INFO(p.describe() << " P=" << size << (own_k ? ", K a tensor of its own" : ""));
      std::mt19937_64 rng(99);
      const auto dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
      const Gradients ref =
          reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
      const Partition part(PartitionKind::zigzag, p.N, size);
      const std::int64_t n = part.local_size(rank);
      const PackedQkv<Mem> packed(p, n);
      const auto &q = packed.q, &v = packed.v;
      Kokkos::View<float ****, Kokkos::LayoutStride, Mem> k = packed.k;
      if (own_k)
        k = Tensor4<float, Mem>("k", std::size_t(p.B), std::size_t(n), std::size_t(p.Hkv),
                                std::size_t(p.D));
      REQUIRE((k.stride_1() != v.stride_1()) == own_k);
      Kokkos::View<float ****, Kokkos::LayoutRight, Mem> odo("odo", p.B, n, 4 * p.H, p.D);
      const auto all = Kokkos::ALL;
      const auto o = Kokkos::subview(odo, all, all, Kokkos::make_pair(0, p.H), all);
      const auto d_o = Kokkos::subview(odo, all, all, Kokkos::make_pair(p.H, 2 * p.H), all);
      REQUIRE(q.stride_1() != d_o.stride_1());
      Kokkos::deep_copy(q, local_rows<float>(p.q, p, p.H, part, rank));
      Kokkos::deep_copy(k, local_rows<float>(p.k, p, p.Hkv, part, rank));
      Kokkos::deep_copy(v, local_rows<float>(p.v, p, p.Hkv, part, rank));
      Kokkos::deep_copy(d_o, local_rows<float>(dout, p, p.H, part, rank));
      RingOptions options;
      options.partition = PartitionKind::zigzag;
      if (p.scale > 0) options.scale = p.scale;
      const RingAttention<Exec, float> attention(p.pattern(), options);
      auto make = [&](int heads) {
        return Tensor4<float, Mem>("t", std::size_t(p.B), std::size_t(n), std::size_t(heads),
                                   std::size_t(p.D));
      };
      const auto o_run = make(p.H);
      Tensor3<float, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H), std::size_t(n));
      attention.forward(MPI_COMM_WORLD, q, k, v, o_run, lse);
      Kokkos::deep_copy(o, o_run);
      auto dq = make(p.H), dk = make(p.Hkv), dv = make(p.Hkv);
      attention.backward(MPI_COMM_WORLD, q, k, v, o, lse, d_o, dq, dk, dv);
      std::vector<double> mine, want;
      collect(dq, ref.dq, p, p.H, part, rank, mine, want);
      CHECK(max_abs_error(mine, want) <= 1e-4);
      collect(dk, ref.dk, p, p.Hkv, part, rank, mine, want);
      CHECK(max_abs_error(mine, want) <= 1e-4);
      collect(dv, ref.dv, p, p.Hkv, part, rank, mine, want);
      CHECK(max_abs_error(mine, want) <= 1e-4);
    }
}
