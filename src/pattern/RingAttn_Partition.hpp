#ifndef RINGATTN_PARTITION_HPP
#define RINGATTN_PARTITION_HPP

// Who owns which positions of the sequence (docs/SPEC.md section 3). Host and device
// callable; a member owns one range (contiguous) or two (zigzag), and its
// local rows are those ranges laid one after the other.

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>

namespace ringattn {

enum class PartitionKind { contiguous, zigzag };

/// A half-open range of global positions [begin, end).
struct Range {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  KOKKOS_INLINE_FUNCTION std::int64_t size() const { return end - begin; }
};

struct Partition {
  PartitionKind kind = PartitionKind::contiguous;
  std::int64_t seq_len = 0;
  int members = 1;

  Partition() = default;
  Partition(PartitionKind kind_, std::int64_t seq_len_, int members_)
      : kind(kind_), seq_len(seq_len_), members(members_) {
    if (members_ < 1) throw std::invalid_argument("partition: ring size must be >= 1");
    if (seq_len_ < 0) throw std::invalid_argument("partition: seq_len must be >= 0");
  }

  /// Number of equal pieces the sequence is cut into: P, or 2P for zigzag.
  KOKKOS_INLINE_FUNCTION std::int64_t num_pieces() const {
    return kind == PartitionKind::zigzag ? 2 * std::int64_t(members) : members;
  }
  /// Start of piece q: floor(q * N / pieces), for 0 <= q <= pieces.
  KOKKOS_INLINE_FUNCTION std::int64_t piece_begin(std::int64_t q) const {
    // q * N can pass 2^63 (N = 2^44, a million members); with N = a * K + b
    // (K pieces), floor(q * N / K) = q * a + floor(q * b / K), where
    // q * a <= N and q * b < K^2 < 2^64 (K <= 2 * INT_MAX) in unsigned.
    const std::int64_t K = num_pieces();
    const std::int64_t a = seq_len / K;
    const std::uint64_t b = std::uint64_t(seq_len % K);
    return q * a + std::int64_t(std::uint64_t(q) * b / std::uint64_t(K));
  }
  /// The piece that holds position t < N: the last q with piece_begin(q) <= t.
  KOKKOS_INLINE_FUNCTION std::int64_t piece_of(std::int64_t t) const {
    // An estimate t * K / N in floating point (off by less than one, where
    // (t + 1) * K in integers could overflow), then corrected exactly.
    const std::int64_t K = num_pieces();
    std::int64_t q = std::int64_t((double(t) + 0.5) * double(K) / double(seq_len));
    q = q < 0 ? 0 : (q > K - 1 ? K - 1 : q);
    while (q > 0 && piece_begin(q) > t) --q;
    while (q + 1 < K && piece_begin(q + 1) <= t) ++q;
    return q;
  }

  KOKKOS_INLINE_FUNCTION int num_ranges() const { return kind == PartitionKind::zigzag ? 2 : 1; }
  /// The k-th range member p owns, in local order: zigzag owns piece p, then
  /// piece 2P-1-p (docs/SPEC.md section 3).
  KOKKOS_INLINE_FUNCTION Range range(int p, int k) const {
    const std::int64_t q = (k == 0) ? p : 2 * std::int64_t(members) - 1 - p;
    return Range{piece_begin(q), piece_begin(q + 1)};
  }
  /// Local row at which range k of member p starts.
  KOKKOS_INLINE_FUNCTION std::int64_t range_local_begin(int p, int k) const {
    return k == 0 ? 0 : range(p, 0).size();
  }
  KOKKOS_INLINE_FUNCTION std::int64_t local_size(int p) const {
    std::int64_t n = 0;
    for (int k = 0; k < num_ranges(); ++k) n += range(p, k).size();
    return n;
  }
  /// Member that owns position t.
  KOKKOS_INLINE_FUNCTION int owner(std::int64_t t) const {
    const std::int64_t q = piece_of(t);
    if (kind == PartitionKind::zigzag && q >= members)
      return int(2 * std::int64_t(members) - 1 - q);
    return int(q);
  }
  /// Local row index of position t on its owner.
  KOKKOS_INLINE_FUNCTION std::int64_t local_index(std::int64_t t) const {
    const std::int64_t q = piece_of(t);
    if (kind == PartitionKind::zigzag && q >= members) {
      const int p = int(2 * std::int64_t(members) - 1 - q);
      return range_local_begin(p, 1) + (t - piece_begin(q));
    }
    return t - piece_begin(q);
  }
  /// Global position of local row `row` of member p.
  KOKKOS_INLINE_FUNCTION std::int64_t global_position(int p, std::int64_t row) const {
    const Range r0 = range(p, 0);
    if (row < r0.size()) return r0.begin + row;
    return range(p, 1).begin + (row - r0.size());
  }
};

} // namespace ringattn

#endif
