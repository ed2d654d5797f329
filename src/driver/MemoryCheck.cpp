#include "MemoryCheck.hpp"

#include "DType.hpp"
#include "ProcessMemory.hpp"

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace ringattn::driver {

std::int64_t available_bytes() {
#if defined(KOKKOS_ENABLE_CUDA)
  if constexpr (std::is_same_v<Kokkos::DefaultExecutionSpace::memory_space, Kokkos::CudaSpace>) {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return std::int64_t(free);
    return -1;
  }
#endif
  return available_host_bytes();
}

namespace {

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(1 << 30));
  return buf;
}

} // namespace

std::string check_memory(const RunConfig &cfg, const Partition &part, int rank,
                         std::int64_t scalar_bytes) {
  if (const char *skip = std::getenv("RINGATTN_SKIP_MEMORY_CHECK"); skip && *skip == '1') return "";
  // The simulated ring sizes its buffers for its largest member: at most
  // ceil(N / pieces) rows per piece (no loop over what may be 2^31 members).
  const std::int64_t per_piece = (part.seq_len + part.num_pieces() - 1) / part.num_pieces();
  const std::int64_t n = rank >= 0
                             ? part.local_size(rank)
                             : std::min(part.seq_len, per_piece * std::int64_t(part.num_ranges()));
  const auto &pr = cfg.problem;
  // in double: the deck bounds B*N*H*D*bytes by 2^62, the sum of five can pass 2^63
  const double rows = double(pr.batch) * double(n);
  // LSE in the accumulate type: float32 for 16-bit storage
  const double lse_bytes = double(std::max<std::int64_t>(scalar_bytes, 4));
  const double need = rows * (double(scalar_bytes) * double(pr.head_dim) *
                                  (2.0 * double(pr.heads) + 2.0 * double(pr.kv_heads)) +
                              lse_bytes * double(pr.heads));
  const std::int64_t avail = available_bytes();
  if (avail < 0 || need <= double(avail)) return "";
  return "ringattn: error: not enough memory" +
         std::string(rank >= 0 ? " on rank " + std::to_string(rank) : "") +
         ": a ring member's Q, K, V, O and LSE (B=" + std::to_string(pr.batch) + ", " +
         std::to_string(n) + " of N=" + std::to_string(pr.seq_len) +
         " positions, H=" + std::to_string(pr.heads) + ", Hkv=" + std::to_string(pr.kv_heads) +
         ", D=" + std::to_string(pr.head_dim) + ", " + dtype_name(pr.dtype) + ") need " +
         gib(need) + ", " + gib(double(avail)) +
         " is available; use a larger ring.size or a smaller problem (ringattn plan DECK "
         "--memory SIZE gives the longest sequence that fits), or set "
         "RINGATTN_SKIP_MEMORY_CHECK=1 to try anyway";
}

} // namespace ringattn::driver
