// MPI: every rank derives its own rows from the partition alone; together
// the ranks cover every position exactly once (docs/SPEC.md section 3).
#include <catch2/catch.hpp>

#include <pattern/RingAttn_Partition.hpp>

#include <mpi.h>

#include <cstdint>
#include <vector>

TEST_CASE("ranks own disjoint rows that cover the sequence", "[mpi][partition]") {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (auto kind : {ringattn::PartitionKind::contiguous, ringattn::PartitionKind::zigzag})
    for (std::int64_t N : {1, 5, 64, 101}) {
      const ringattn::Partition part(kind, N, size);
      std::vector<int> mine(N, 0), total(N, 0);
      for (std::int64_t row = 0; row < part.local_size(rank); ++row)
        ++mine[part.global_position(rank, row)];
      MPI_Allreduce(mine.data(), total.data(), int(N), MPI_INT, MPI_SUM, MPI_COMM_WORLD);
      for (std::int64_t t = 0; t < N; ++t) {
        REQUIRE(total[t] == 1);
        if (mine[t]) REQUIRE(part.owner(t) == rank);
      }
    }
}
