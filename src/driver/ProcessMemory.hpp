#ifndef RINGATTN_DRIVER_PROCESSMEMORY_HPP
#define RINGATTN_DRIVER_PROCESSMEMORY_HPP

#include <cstdint>

namespace ringattn::driver {

/// Resident set size of this process now, and its peak so far (bytes), from
/// /proc/self/status (VmRSS, VmHWM) or getrusage where that is missing.
std::int64_t resident_bytes();
std::int64_t peak_resident_bytes();

/// Memory this process could still allocate without being killed (bytes):
/// MemAvailable of /proc/meminfo, lowered to the room left under a cgroup
/// memory limit where there is one; -1 where unknown.
std::int64_t available_host_bytes();

/// Resets the peak to the current resident size (Linux: /proc/self/clear_refs),
/// so that each point of a sweep reports its own peak. False where unsupported.
bool reset_peak_resident();

/// Makes large allocations go straight to and from the OS (glibc: a fixed
/// mmap threshold; free memory trimmed), so that freed buffers of one sweep
/// point do not stay resident into the next and distort its baseline.
void return_freed_memory();

} // namespace ringattn::driver

#endif
