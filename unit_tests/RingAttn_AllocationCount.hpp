#ifndef RINGATTN_ALLOCATIONCOUNT_HPP
#define RINGATTN_ALLOCATIONCOUNT_HPP

// What the library allocates while a test runs, through Kokkos' tools
// interface: allocations whose label starts with "ringattn" (the library's
// own buffers; Kokkos' internal team scratch is not among them).

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace ringattn::test {

/// The number, bytes and largest of the "ringattn" allocations while one
/// AllocationCount is alive (one at a time).
struct AllocationCount {
  static inline std::int64_t count = 0, bytes = 0, largest = 0;
  static void on_allocate(const Kokkos::Tools::SpaceHandle, const char *label, const void *,
                          const std::uint64_t size) {
    if (std::strncmp(label, "ringattn", 8) != 0) return;
    ++count;
    bytes += std::int64_t(size);
    largest = std::max(largest, std::int64_t(size));
  }
  AllocationCount() {
    count = bytes = largest = 0;
    Kokkos::Tools::Experimental::set_allocate_data_callback(&on_allocate);
  }
  ~AllocationCount() { Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr); }
  AllocationCount(const AllocationCount &) = delete;
  AllocationCount &operator=(const AllocationCount &) = delete;
};

} // namespace ringattn::test

#endif
