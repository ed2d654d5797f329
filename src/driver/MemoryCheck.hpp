#ifndef RINGATTN_DRIVER_MEMORYCHECK_HPP
#define RINGATTN_DRIVER_MEMORYCHECK_HPP

#include "Deck.hpp"

#include <pattern/RingAttn_Partition.hpp>

#include <cstdint>
#include <string>

namespace ringattn::driver {

/// Bytes free for the ring's buffers in the default memory space, or -1 if
/// unknown: the host's available memory (and cgroup limit), or the GPU's
/// free memory.
std::int64_t available_bytes();

/// Empty when the member's tensors (Q, K, V, O [B, n, H|Hkv, D], LSE [B, H, n],
/// a lower bound on what the ring allocates) of `scalar_bytes` values (LSE in float32
/// at least) fit the memory available; else the error message. `rank` < 0: the simulated ring
/// (its largest member). RINGATTN_SKIP_MEMORY_CHECK=1 skips the check
/// (allocation errors are still reported, as exit 1).
std::string check_memory(const RunConfig &cfg, const Partition &part, int rank,
                         std::int64_t scalar_bytes);

} // namespace ringattn::driver

#endif
