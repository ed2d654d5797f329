// The MPI ring (docs/SPEC.md section 3): every rank holds only its own rows; the result
// equals the single-member run within 1e-5 and the float64 reference within
// 2e-5, for dense, dilated (both mixings), causal and GQA problems, both
// partitions, overlap on and off, and on a sub-communicator; a plan made once
// gives the same results bitwise, pass after pass, allocating nothing (and
// in host memory holding no send buffer: wires go from K and V in place).
#include <catch2/catch.hpp>

#include "RingAttn_AllocationCount.hpp"
#include "RingAttn_MpiTestCase.hpp"
#include <ring/detail/RingAttn_Exchange.hpp>

#include <mpi.h>

#include <cstring>
#include <random>

using namespace ringattn;
using namespace ringattn::test;

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

/// This rank's O and LSE against the single member and the float64
/// reference: 1e-5 and 2e-5 in float; in 16-bit storage (inputs rounded)
/// O within 1e-2 (bfloat16) or 2e-3 (float16) of both, LSE within 1e-3.
template <class Scalar = float>
void check_rank_rows(MPI_Comm comm, const Problem &p, PartitionKind kind, bool overlap) {
  constexpr bool half = is_16bit_storage_v<Scalar>;
  const double o_tol = !half ? 2e-5 : std::is_same_v<Scalar, bfloat16_t> ? 1e-2 : 2e-3;
  const double lse_tol = half ? 1e-3 : 2e-5;
  const double single_tol = half ? o_tol : 1e-5;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  INFO(p.describe() << " P=" << size << (kind == PartitionKind::zigzag ? " zigzag" : " contiguous")
                    << (overlap ? " overlap" : ""));
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const Output single = run_api<Exec, Scalar>(p);

  const Partition part(kind, p.N, size);
  const std::int64_t n = part.local_size(rank);
  auto q = local_rows<Scalar>(p.q, p, p.H, part, rank);
  auto k = local_rows<Scalar>(p.k, p, p.Hkv, part, rank);
  auto v = local_rows<Scalar>(p.v, p, p.Hkv, part, rank);
  Tensor4<Scalar, Mem> o("o", std::size_t(p.B), std::size_t(n), std::size_t(p.H), std::size_t(p.D));
  Tensor3<accumulate_t<Scalar>, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H), std::size_t(n));
  RingOptions options;
  options.partition = kind;
  options.overlap = overlap;
  if (p.scale > 0) options.scale = p.scale;
  RingAttention<Exec, Scalar> attention(p.pattern(), options);
  attention.forward(comm, q, k, v, o, lse);
  auto oh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
  auto lh = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);

  std::vector<double> mine_o, single_o, ref_o, mine_l, single_l, ref_l;
  for (int b = 0; b < p.B; ++b)
    for (std::int64_t row = 0; row < n; ++row) {
      const std::int64_t t = part.global_position(rank, row);
      for (int h = 0; h < p.H; ++h) {
        const std::size_t li = (std::size_t(b) * p.H + h) * p.N + t;
        mine_l.push_back(lh(b, h, row));
        single_l.push_back(single.lse[li]);
        ref_l.push_back(ref.lse[li]);
        for (int d = 0; d < p.D; ++d) {
          const std::size_t oi = ((b * p.N + t) * p.H + h) * p.D + d;
          mine_o.push_back(double(oh(b, row, h, d)));
          single_o.push_back(single.o[oi]);
          ref_o.push_back(ref.o[oi]);
        }
      }
    }
  CHECK(max_abs_error(mine_o, single_o) <= single_tol);
  CHECK(max_abs_error(mine_l, single_l) <= (half ? lse_tol : 1e-5));
  CHECK(max_abs_error(mine_o, ref_o) <= o_tol);
  CHECK(max_abs_error(mine_l, ref_l) <= lse_tol);
}

} // namespace

TEST_CASE("MPI ring equals the single member and the reference", "[mpi][ring]") {
  for (const Problem &p : standard_problems())
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
      for (bool overlap : {true, false}) check_rank_rows(MPI_COMM_WORLD, p, kind, overlap);
}

TEST_CASE("MPI ring in 16-bit storage", "[mpi][ring][half]") {
  for (const Problem &raw : standard_problems()) {
    check_rank_rows<bfloat16_t>(MPI_COMM_WORLD, rounded_to<bfloat16_t>(raw), PartitionKind::zigzag,
                                true);
    check_rank_rows<float16_t>(MPI_COMM_WORLD, rounded_to<float16_t>(raw),
                               PartitionKind::contiguous, true);
  }
}

TEST_CASE("MPI ring runs on a sub-communicator", "[mpi][ring]") {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
  const auto ps = standard_problems();
  check_rank_rows(half, ps[2], PartitionKind::zigzag, true);
  check_rank_rows(half, ps[3], PartitionKind::contiguous, true);
  MPI_Comm_free(&half);
}

TEST_CASE("messages past MPI's int count: one element of a spanning datatype", "[mpi][ring]") {
  // contiguous_type(count, base, chunk) describes `count` values as runs of
  // `chunk` and a rest; the ring uses chunk = INT_MAX. Checked with small
  // chunks, between neighbours of the ring.
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int dst = (rank + 1) % size, src = (rank - 1 + size) % size;
  for (std::int64_t count : {0, 1, 6, 7, 8, 50, 1000})
    for (std::int64_t chunk : {1, 7, 64}) {
      std::vector<float> out(std::size_t(count) + 1), in(std::size_t(count) + 1, -1.0f);
      for (std::int64_t i = 0; i < count; ++i) out[std::size_t(i)] = float(rank * 10000 + i);
      MPI_Datatype whole = ringattn::Details::contiguous_type(count, MPI_FLOAT, chunk);
      int bytes = 0;
      MPI_Type_size(whole, &bytes);
      REQUIRE(bytes == int(count * std::int64_t(sizeof(float))));
      MPI_Request req[2];
      MPI_Irecv(in.data(), 1, whole, src, 7, MPI_COMM_WORLD, &req[0]);
      MPI_Isend(out.data(), 1, whole, dst, 7, MPI_COMM_WORLD, &req[1]);
      MPI_Type_free(&whole); // the pending messages keep it
      MPI_Waitall(2, req, MPI_STATUSES_IGNORE);
      for (std::int64_t i = 0; i < count; ++i)
        REQUIRE(in[std::size_t(i)] == float(src * 10000 + i));
      REQUIRE(in[std::size_t(count)] == -1.0f); // nothing past the end
    }
}

TEST_CASE("MPI ring: wires holding rows read twice are expanded on arrival", "[mpi][ring]") {
  // Overlapping branches: rows of the long segments that several branches
  // (or phases) read cross once and are expanded by the receiver. The
  // standard problems check the results; here, that the path is taken and
  // that the bytes sent are the wires' (unique rows), not the blocks'.
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const Problem p =
      make_problem(150, 4, 4, 8, false, true, Mixing::mixture, {8, 16, 64}, {1, 2, 4}, 3);
  for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag}) {
    const Partition part(kind, p.N, size);
    int expanding = 0;
    std::int64_t wire_rows = 0, block_rows = 0;
    for (int j = 0; j < size; ++j)
      if (j != rank) {
        const auto in = ringattn::Details::plan_exchange(p.pattern(), part, rank, j, true);
        expanding += in.expands() ? 1 : 0;
        const auto out = ringattn::Details::plan_exchange(p.pattern(), part, j, rank, false);
        wire_rows += out.rows;
        block_rows += out.block_rows;
      }
    int any = 0;
    MPI_Allreduce(&expanding, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (size > 1) CHECK(any > 0);
    CHECK(wire_rows <= block_rows);

    const std::int64_t n = part.local_size(rank);
    auto q = local_rows(p.q, p, p.H, part, rank);
    auto k = local_rows(p.k, p, p.Hkv, part, rank);
    auto v = local_rows(p.v, p, p.Hkv, part, rank);
    Tensor4<float, Mem> o("o", std::size_t(p.B), std::size_t(n), std::size_t(p.H),
                          std::size_t(p.D));
    Tensor3<float, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H), std::size_t(n));
    RingOptions options;
    options.partition = kind;
    RingAttention<Exec, float> attention(p.pattern(), options);
    const RingStats stats = attention.forward(MPI_COMM_WORLD, q, k, v, o, lse);
    CHECK(stats.bytes_sent[rank] == 2 * p.B * wire_rows * p.D * std::int64_t(sizeof(float)));
    check_rank_rows(MPI_COMM_WORLD, p, kind, true); // and the result is right
  }
}

namespace {
template <class View>
bool same_bits(const View &a, const View &b) {
  auto ha = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), a);
  auto hb = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), b);
  return ha.span() == hb.span() &&
         std::memcmp(ha.data(), hb.data(), ha.span() * sizeof(typename View::value_type)) == 0;
}
} // namespace

TEST_CASE("MPI plan: one communicator duplicate, reused buffers, the planless results bitwise",
          "[mpi][ring][ringplan]") {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const auto ps = standard_problems();
  for (const Problem &p : {ps[2], ps[3]}) {
    INFO(p.describe() << " P=" << size);
    const Partition part(PartitionKind::zigzag, p.N, size);
    const std::int64_t n = part.local_size(rank);
    auto q = local_rows<float>(p.q, p, p.H, part, rank);
    auto k = local_rows<float>(p.k, p, p.Hkv, part, rank);
    auto v = local_rows<float>(p.v, p, p.Hkv, part, rank);
    std::mt19937_64 rng(7);
    std::vector<double> dout_all(std::size_t(p.B) * p.N * p.H * p.D);
    for (double &x : dout_all) x = std::uniform_real_distribution<double>(-1, 1)(rng);
    auto d_o = local_rows<float>(dout_all, p, p.H, part, rank);
    using T4 = Tensor4<float, Mem>;
    auto make4 = [&](int heads) { return T4("t", p.B, n, heads, p.D); };
    RingOptions options;
    options.partition = PartitionKind::zigzag;
    if (p.scale > 0) options.scale = p.scale;
    const RingAttention<Exec, float> attention(p.pattern(), options);

    const auto plan = attention.make_plan(MPI_COMM_WORLD, p.B, p.D);
    REQUIRE(plan.for_mpi());
    REQUIRE(plan.members() == size);
    const MPI_Comm ring = plan.communicator();
    int same = MPI_UNEQUAL;
    MPI_Comm_compare(ring, MPI_COMM_WORLD, &same);
    CHECK(same == MPI_CONGRUENT); // a duplicate: its own tag space

    T4 o_own = make4(p.H), o = make4(p.H);
    Tensor3<float, Mem> lse_own("lse", p.B, p.H, n), lse("lse", p.B, p.H, n);
    attention.forward(MPI_COMM_WORLD, q, k, v, o_own, lse_own);
    attention.forward(plan, q, k, v, o, lse); // sizes the plan's buffers
    for (int pass = 0; pass < 2; ++pass) {
      const AllocationCount counting;
      attention.forward(plan, q, k, v, o, lse);
      CHECK(AllocationCount::count == 0);
    }
    CHECK(plan.communicator() == ring); // duplicated once, at make_plan
    CHECK(same_bits(o, o_own));
    CHECK(same_bits(lse, lse_own));

    T4 dq_own = make4(p.H), dk_own = make4(p.Hkv), dv_own = make4(p.Hkv);
    T4 dq = make4(p.H), dk = make4(p.Hkv), dv = make4(p.Hkv);
    attention.backward(MPI_COMM_WORLD, q, k, v, o, lse, d_o, dq_own, dk_own, dv_own);
    for (int pass = 0; pass < 2; ++pass) {
      attention.backward(plan, q, k, v, o, lse, d_o, dq, dk, dv);
      CHECK(same_bits(dq, dq_own));
      CHECK(same_bits(dk, dk_own));
      CHECK(same_bits(dv, dv_own));
    }

    // host memory: wires go from K and V in place, no send buffer
    if constexpr (Details::sends_in_place<Mem>)
      CHECK(plan.schedule().send.device.capacity_bytes() == 0);

    // a plan for another head dim is refused on every rank
    const auto wrong = attention.make_plan(MPI_COMM_WORLD, p.B, p.D + 1);
    CHECK_THROWS_AS(attention.forward(wrong, q, k, v, o, lse), std::invalid_argument);
  }
}

TEST_CASE("MPI plan in 16-bit storage: the float running O is kept, later passes allocate nothing",
          "[mpi][ring][ringplan][half]") {
  // zigzag members receive and keep their whole float32 running O;
  // contiguous members of the dilated problem whose segments lie in their
  // share keep a chunk of it. Either way the plan makes it on its first
  // forward; later forwards allocate nothing and equal, bit for bit, the
  // forward that builds its own plan.
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  using B16 = bfloat16_t;
  const auto ps = standard_problems();
  for (const Problem &raw : {ps[2], ps[3]})
    for (const PartitionKind kind : {PartitionKind::zigzag, PartitionKind::contiguous}) {
      const Problem p = rounded_to<B16>(raw);
      int size = 1;
      MPI_Comm_size(MPI_COMM_WORLD, &size);
      INFO(p.describe() << " P=" << size << " zigzag " << (kind == PartitionKind::zigzag));
      const Partition part(kind, p.N, size);
      const std::int64_t n = part.local_size(rank);
      auto q = local_rows<B16>(p.q, p, p.H, part, rank);
      auto k = local_rows<B16>(p.k, p, p.Hkv, part, rank);
      auto v = local_rows<B16>(p.v, p, p.Hkv, part, rank);
      RingOptions options;
      options.partition = kind;
      if (p.scale > 0) options.scale = p.scale;
      const RingAttention<Exec, B16> attention(p.pattern(), options);
      const auto plan = attention.make_plan(MPI_COMM_WORLD, p.B, p.D);
      Tensor4<B16, Mem> o_own("o_own", p.B, n, p.H, p.D), o("o", p.B, n, p.H, p.D);
      Tensor3<float, Mem> lse_own("lse_own", p.B, p.H, n), lse("lse", p.B, p.H, n);
      attention.forward(MPI_COMM_WORLD, q, k, v, o_own, lse_own);
      attention.forward(plan, q, k, v, o, lse); // makes the plan's float running O
      for (int pass = 0; pass < 2; ++pass) {
        const AllocationCount counting;
        attention.forward(plan, q, k, v, o, lse);
        CHECK(AllocationCount::count == 0);
      }
      CHECK(same_bits(o, o_own));
      CHECK(same_bits(lse, lse_own));
    }
}
