#ifndef RINGATTN_COUNTERRANDOM_HPP
#define RINGATTN_COUNTERRANDOM_HPP

// Counter-based random inputs: the value of element i of tensor `stream` is a
// pure function of (seed, stream, i), so any ring member makes its own rows
// of Q, K and V without the others, on any backend, and the inputs do not
// depend on P, the partition or the mode. splitmix64 finalizer as the hash.

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace ringattn::Details {

KOKKOS_INLINE_FUNCTION std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Uniform in [-1, 1), exactly representable in float32 (24 random bits).
KOKKOS_INLINE_FUNCTION double counter_uniform(std::uint64_t seed, std::uint64_t stream,
                                              std::uint64_t index) {
  const std::uint64_t h = splitmix64(splitmix64(seed ^ (stream * 0xD1B54A32D192ED03ull)) + index);
  return double(h >> 40) * (2.0 / 16777216.0) - 1.0;
}

} // namespace ringattn::Details

#endif
