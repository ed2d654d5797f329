// Partitions of docs/SPEC.md section 3 against a brute-force assignment.
#include <catch2/catch.hpp>

#include <pattern/RingAttn_Partition.hpp>

#include <cstdint>
#include <vector>

using ringattn::Partition;
using ringattn::PartitionKind;

namespace {
// Literal docs/SPEC.md section 3: cut N into `pieces` the floor way; return owner and local row.
void literal(PartitionKind kind, std::int64_t N, int P, std::vector<int> &owner,
             std::vector<std::int64_t> &local) {
  owner.assign(N, -1);
  local.assign(N, -1);
  const std::int64_t pieces = kind == PartitionKind::zigzag ? 2 * P : P;
  auto cut = [&](std::int64_t q) { return (q * N) / pieces; };
  for (int p = 0; p < P; ++p) {
    std::vector<std::int64_t> mine = {p};
    if (kind == PartitionKind::zigzag) mine.push_back(2 * P - 1 - p);
    std::int64_t row = 0;
    for (std::int64_t q : mine)
      for (std::int64_t t = cut(q); t < cut(q + 1); ++t) {
        owner[t] = p;
        local[t] = row++;
      }
  }
}
} // namespace

TEST_CASE("partitions equal the literal SPEC assignment", "[partition]") {
  for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
    for (std::int64_t N = 1; N <= 70; ++N)
      for (int P = 1; P <= 17; ++P) {
        std::vector<int> owner;
        std::vector<std::int64_t> local;
        literal(kind, N, P, owner, local);
        const Partition part(kind, N, P);
        std::int64_t total = 0;
        for (int p = 0; p < P; ++p) total += part.local_size(p);
        REQUIRE(total == N);
        for (std::int64_t t = 0; t < N; ++t) {
          REQUIRE(owner[t] >= 0);
          REQUIRE(part.owner(t) == owner[t]);
          REQUIRE(part.local_index(t) == local[t]);
          REQUIRE(part.global_position(owner[t], local[t]) == t);
        }
      }
}

TEST_CASE("zigzag balances causal work", "[partition]") {
  // Causal pairs of member p: sum over owned t of (t + 1). Zigzag's spread is
  // far below contiguous's for an even cut.
  const std::int64_t N = 1 << 12;
  const int P = 8;
  auto spread = [&](PartitionKind kind) {
    const Partition part(kind, N, P);
    std::int64_t lo = INT64_MAX, hi = 0;
    for (int p = 0; p < P; ++p) {
      std::int64_t work = 0;
      for (int k = 0; k < part.num_ranges(); ++k)
        for (std::int64_t t = part.range(p, k).begin; t < part.range(p, k).end; ++t) work += t + 1;
      lo = std::min(lo, work);
      hi = std::max(hi, work);
    }
    return double(hi) / double(lo);
  };
  CHECK(spread(PartitionKind::zigzag) < 1.01);
  CHECK(spread(PartitionKind::contiguous) > 10.0);
}

TEST_CASE("partition handles large sequences without overflow", "[partition]") {
  const std::int64_t N = std::int64_t(1) << 40;
  const Partition part(PartitionKind::zigzag, N, 1000);
  for (std::int64_t t : {std::int64_t(0), N / 3, N - 1}) {
    const int p = part.owner(t);
    REQUIRE(part.global_position(p, part.local_index(t)) == t);
  }
}

TEST_CASE("partition index math where q * N and (t + 1) * pieces pass 2^63", "[partition]") {
  // Exact floor(q * N / K) in 128 bits, against the partition's 64-bit math.
  auto exact_cut = [](std::int64_t q, std::int64_t N, std::int64_t K) {
    return std::int64_t((unsigned __int128)q * (unsigned __int128)N / (unsigned __int128)K);
  };
  struct Case {
    std::int64_t N;
    int P;
  };
  for (const Case c :
       {Case{(std::int64_t(1) << 44) + 12345, (1 << 20) + 3}, Case{std::int64_t(1) << 33, 3},
        Case{(std::int64_t(1) << 62) - 1, 2147483647}, Case{std::int64_t(3000000000), 1000}})
    for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag}) {
      const Partition part(kind, c.N, c.P);
      const std::int64_t K = part.num_pieces();
      std::int64_t total = 0;
      if (c.P <= (1 << 21))
        for (int p = 0; p < c.P; ++p) total += part.local_size(p);
      else
        total = c.N;
      REQUIRE(total == c.N);
      for (std::int64_t q : {std::int64_t(0), std::int64_t(1), K / 3, K / 2 + 1, K - 1, K}) {
        INFO("N " << c.N << " P " << c.P << " q " << q);
        REQUIRE(part.piece_begin(q) == exact_cut(q, c.N, K));
        if (q == K) continue;
        REQUIRE(part.piece_begin(q) <= part.piece_begin(q + 1));
        // Positions around the piece's start map to their owner and back.
        for (std::int64_t t : {part.piece_begin(q) - 1, part.piece_begin(q),
                               part.piece_begin(q) + 1, part.piece_begin(q + 1) - 1}) {
          if (t < 0 || t >= c.N) continue;
          const int p = part.owner(t);
          REQUIRE(p >= 0);
          REQUIRE(p < c.P);
          const std::int64_t row = part.local_index(t);
          REQUIRE(row >= 0);
          REQUIRE(row < part.local_size(p));
          REQUIRE(part.global_position(p, row) == t);
        }
      }
    }
}
