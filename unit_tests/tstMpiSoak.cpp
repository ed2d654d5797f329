// Soak (hidden tag [.soak], registered as mpi_soak_np2): 1,000 consecutive
// forward() calls on one RingAttention over MPI give bitwise the first call's
// result, and leak neither memory (resident size after warm-up) nor MPI
// communicators (Open MPI hands out the lowest free Fortran handle index, so
// the index of a fresh MPI_Comm_dup grows only when communicators leak).
#include <catch2/catch.hpp>

#include "RingAttn_MpiTestCase.hpp"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unistd.h>

using namespace ringattn;
using namespace ringattn::test;

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

/// Resident set size of this process (bytes), from /proc/self/statm.
std::int64_t resident_bytes() {
  long pages_total = 0, pages_resident = 0;
  std::FILE *f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  const int got = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
  std::fclose(f);
  return got == 2 ? std::int64_t(pages_resident) * sysconf(_SC_PAGESIZE) : -1;
}

/// The Fortran handle index a new communicator gets now (it is freed again).
int next_comm_handle(MPI_Comm comm) {
  MPI_Comm probe;
  MPI_Comm_dup(comm, &probe);
  const int handle = int(MPI_Comm_c2f(probe));
  MPI_Comm_free(&probe);
  return handle;
}

} // namespace

TEST_CASE("soak: 1,000 forward calls on one RingAttention", "[.soak][mpi]") {
  const MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // Small dilated causal GQA problem: rows move between the ranks every call.
  const Problem p = make_problem(96, 4, 2, 16, true, true, Mixing::mixture, {16, 96}, {1, 2}, 17);
  const Partition part(PartitionKind::zigzag, p.N, size);
  const std::int64_t n = part.local_size(rank);
  auto q = local_rows(p.q, p, p.H, part, rank);
  auto k = local_rows(p.k, p, p.Hkv, part, rank);
  auto v = local_rows(p.v, p, p.Hkv, part, rank);
  Tensor4<float, Mem> o("o", std::size_t(p.B), std::size_t(n), std::size_t(p.H), std::size_t(p.D));
  Tensor3<float, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H), std::size_t(n));
  RingOptions options;
  options.partition = PartitionKind::zigzag;
  const RingAttention<Exec, float> attention(p.pattern(), options);

  attention.forward(comm, q, k, v, o, lse);
  const auto o_first = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
  const auto lse_first = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
  // The first call is right (against the float64 reference) ...
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  double err = 0;
  for (std::int64_t row = 0; row < n; ++row) {
    const std::int64_t t = part.global_position(rank, row);
    for (int h = 0; h < p.H; ++h) {
      err = std::max(err, std::abs(lse_first(0, h, row) - ref.lse[h * p.N + t]));
      for (int d = 0; d < p.D; ++d)
        err = std::max(err, std::abs(o_first(0, row, h, d) - ref.o[(t * p.H + h) * p.D + d]));
    }
  }
  REQUIRE(err <= 2e-5);

  // ... and every later call repeats it bit for bit.
  auto o_now = Kokkos::create_mirror_view(o);
  auto lse_now = Kokkos::create_mirror_view(lse);
  constexpr int calls = 1000, warmup = 100;
  std::int64_t rss_warm = 0;
  int handle_warm = 0, differing = 0;
  for (int call = 1; call < calls; ++call) {
    if (call == warmup) {
      rss_warm = resident_bytes();
      handle_warm = next_comm_handle(comm);
    }
    attention.forward(comm, q, k, v, o, lse);
    Kokkos::deep_copy(o_now, o);
    Kokkos::deep_copy(lse_now, lse);
    if (std::memcmp(o_now.data(), o_first.data(), o_first.span() * sizeof(float)) != 0 ||
        std::memcmp(lse_now.data(), lse_first.data(), lse_first.span() * sizeof(float)) != 0)
      ++differing;
  }
  const std::int64_t rss_end = resident_bytes();
  const int handle_end = next_comm_handle(comm);
  INFO("rank " << rank << ": resident " << rss_warm << " B after " << warmup << " calls, "
               << rss_end << " B after " << calls << "; next communicator handle " << handle_warm
               << " then " << handle_end);
  CHECK(differing == 0);
  REQUIRE(rss_warm > 0);
  // A leak of the smallest buffer a call allocates (this rank's O, 3 KiB)
  // would add 2.7 MiB over 900 calls; allocator noise stays well below 1 MiB.
  CHECK(rss_end - rss_warm <= std::int64_t(1) << 20);
  CHECK(handle_end - handle_warm <= 1);
}
