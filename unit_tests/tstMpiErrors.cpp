// Errors inside an application (docs/reliability.md): through the library
// API under mpirun, a bad argument on one rank makes every rank throw the
// same std::invalid_argument before any message moves, and the ring still
// works afterwards; an exception on one rank after messages move ends the
// job with a message naming the rank. Hidden tags, registered as their own
// CTests with a 30 s limit: [.errors] (mpi_errors_np2..4) and [.abort]
// (mpi_abort_np2..4).
#include <catch2/catch.hpp>

#include "RingAttn_MpiTestCase.hpp"

#include <mpi.h>

#include <stdexcept>
#include <string>

using namespace ringattn;
using namespace ringattn::test;

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

struct RankTensors {
  Tensor4<float, Mem> q, k, v, o;
  Tensor3<float, Mem> lse;
};

/// This rank's tensors of `p`; `extra_rows` more rows in q (a bad shape).
RankTensors rank_tensors(const Problem &p, const Partition &part, int rank, int extra_rows = 0) {
  RankTensors t;
  t.q = local_rows(p.q, p, p.H, part, rank);
  t.k = local_rows(p.k, p, p.Hkv, part, rank);
  t.v = local_rows(p.v, p, p.Hkv, part, rank);
  const std::size_t n = std::size_t(part.local_size(rank));
  if (extra_rows > 0)
    t.q = Tensor4<float, Mem>("q_bad", std::size_t(p.B), n + std::size_t(extra_rows),
                              std::size_t(p.H), std::size_t(p.D));
  t.o = Tensor4<float, Mem>("o", std::size_t(p.B), n, std::size_t(p.H), std::size_t(p.D));
  t.lse = Tensor3<float, Mem>("lse", std::size_t(p.B), std::size_t(p.H), n);
  return t;
}

/// The message every rank got from `call`, or "" when it did not throw
/// std::invalid_argument.
template <class Call>
std::string message_of(const Call &call) {
  try {
    call();
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
  return "";
}

/// True on every rank when all ranks hold the same string.
bool same_on_all_ranks(MPI_Comm comm, const std::string &s) {
  int length = int(s.size()), min_length = 0, max_length = 0;
  MPI_Allreduce(&length, &min_length, 1, MPI_INT, MPI_MIN, comm);
  MPI_Allreduce(&length, &max_length, 1, MPI_INT, MPI_MAX, comm);
  if (min_length != max_length) return false;
  std::string root = s;
  MPI_Bcast(root.data(), length, MPI_CHAR, 0, comm);
  int same = root == s ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, comm);
  return same == 1;
}

/// After an agreed error the ring is usable: a correct forward matches the
/// float64 reference on every rank (contiguous partition).
void check_ring_still_works(MPI_Comm comm, const Problem &p, const Partition &part) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  RankTensors t = rank_tensors(p, part, rank);
  RingAttention<Exec, float>(p.pattern()).forward(comm, t.q, t.k, t.v, t.o, t.lse);
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const auto o = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), t.o);
  double err = 0;
  for (std::int64_t row = 0; row < part.local_size(rank); ++row) {
    const std::int64_t g = part.global_position(rank, row);
    for (int h = 0; h < p.H; ++h)
      for (int d = 0; d < p.D; ++d)
        err = std::max(err, std::abs(o(0, row, h, d) - ref.o[(g * p.H + h) * p.D + d]));
  }
  CHECK(err <= 2e-5);
}

} // namespace

TEST_CASE("mpi errors: a bad shape on one rank throws on every rank", "[.errors][mpi]") {
  const MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const Problem p = make_problem(48, 2, 1, 8, true, true, Mixing::mixture, {8, 48}, {1, 2}, 5);
  const Partition part(PartitionKind::contiguous, p.N, size);
  const int bad_rank = size - 1;
  RankTensors t = rank_tensors(p, part, rank, rank == bad_rank ? 1 : 0);
  const RingAttention<Exec, float> attention(p.pattern());
  const std::string what = message_of([&] { attention.forward(comm, t.q, t.k, t.v, t.o, t.lse); });
  INFO("rank " << rank << ": " << what);
  CHECK(what.find("rank " + std::to_string(bad_rank) + " of " + std::to_string(size)) !=
        std::string::npos);
  CHECK(what.find("q has the wrong number of rows") != std::string::npos);
  CHECK(same_on_all_ranks(comm, what));

  // The backward agrees the same way (here: dout of the wrong shape).
  Tensor4<float, Mem> dq("dq", t.o.extent(0), t.o.extent(1), t.o.extent(2), t.o.extent(3));
  Tensor4<float, Mem> dk("dk", t.k.extent(0), t.k.extent(1), t.k.extent(2), t.k.extent(3));
  Tensor4<float, Mem> dv("dv", t.k.extent(0), t.k.extent(1), t.k.extent(2), t.k.extent(3));
  Tensor4<float, Mem> dout("dout", t.o.extent(0), t.o.extent(1) + (rank == bad_rank ? 2 : 0),
                           t.o.extent(2), t.o.extent(3));
  const RankTensors good = rank_tensors(p, part, rank);
  const std::string what_backward = message_of([&] {
    attention.backward(comm, good.q, good.k, good.v, good.o, good.lse, dout, dq, dk, dv);
  });
  INFO("rank " << rank << ": " << what_backward);
  CHECK(what_backward.find("backward: rank " + std::to_string(bad_rank)) != std::string::npos);
  CHECK(what_backward.find("o and dout must have the shape of q") != std::string::npos);
  CHECK(same_on_all_ranks(comm, what_backward));

  check_ring_still_works(comm, p, part);
}

TEST_CASE("mpi errors: a bad option on one rank throws on every rank", "[.errors][mpi]") {
  const MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const Problem p = make_problem(40, 2, 2, 8, false, false, Mixing::mixture, {40}, {1}, 9);
  const Partition part(PartitionKind::contiguous, p.N, size);
  RankTensors t = rank_tensors(p, part, rank);
  // What forward() threw on this rank ("" when it did not throw).
  auto forward_error = [&](const RingOptions &options, const Pattern &pattern) {
    const RingAttention<Exec, float> attention(pattern, options);
    const std::string what =
        message_of([&] { attention.forward(comm, t.q, t.k, t.v, t.o, t.lse); });
    UNSCOPED_INFO("rank " << rank << ": " << what);
    return what;
  };

  SECTION("a zero tile is refused when it is set, before any collective") {
    RingOptions options;
    Tiling bad;
    bad.q_tile = 0;
    options.tiling = bad;
    const std::string what =
        message_of([&] { const RingAttention<Exec, float> attention(p.pattern(), options); });
    CHECK(what.find("q_tile") != std::string::npos);
  }
  SECTION("tiles on the last rank too large for team scratch") {
    RingOptions options;
    if (rank == size - 1) {
      Tiling huge = default_tiling<Exec, float>(p.D);
      huge.q_tile = 1 << 20;
      huge.k_tile = 1 << 20;
      options.tiling = huge;
    }
    const std::string what = forward_error(options, p.pattern());
    CHECK(what.find("rank " + std::to_string(size - 1) + " of") != std::string::npos);
    CHECK(what.find("team scratch") != std::string::npos);
    CHECK(same_on_all_ranks(comm, what));
  }
  SECTION("a scale on the last rank that the others do not have") {
    RingOptions options;
    if (rank == size - 1) options.scale = 0.5;
    const std::string what = forward_error(options, p.pattern());
    if (size > 1) {
      CHECK(what.find("ranks disagree") != std::string::npos);
      CHECK(same_on_all_ranks(comm, what));
    } else {
      CHECK(what.empty()); // one rank always agrees with itself
    }
  }
  SECTION("a different pattern on rank 0") {
    const Pattern pattern = rank == 0 ? Pattern::dense(p.N, p.H, p.Hkv, true) : p.pattern();
    const std::string what = forward_error({}, pattern);
    CHECK((size == 1 ? what.empty() : what.find("ranks disagree") != std::string::npos));
  }
  check_ring_still_works(comm, p, part);
}

TEST_CASE("mpi errors: an exception on one rank mid-ring ends the job", "[.abort][mpi]") {
  const MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const Problem p = make_problem(64, 2, 2, 8, false, false, Mixing::mixture, {64}, {1}, 3);
  const Partition part(PartitionKind::contiguous, p.N, size);
  RankTensors t = rank_tensors(p, part, rank);
  RingOptions options;
  // The application's code inside the ring throws on the last rank after
  // its first hop: the next hop's messages are posted by then (overlap).
  const int thrower = size - 1;
  options.progress = [rank, thrower](const RingProgress &progress) {
    if (rank == thrower && progress.step == 1)
      throw std::runtime_error("injected failure inside the ring");
  };
  const RingAttention<Exec, float> attention(p.pattern(), options);
  attention.forward(comm, t.q, t.k, t.v, t.o, t.lse);
  FAIL("not reached: the job ends inside forward()");
}
