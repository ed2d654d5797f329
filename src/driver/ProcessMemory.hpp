#ifndef RINGATTN_DRIVER_PROCESSMEMORY_HPP
#define RINGATTN_DRIVER_PROCESSMEMORY_HPP

#include <cstdint>

namespace ringattn::driver {

/// Resident set size of this process now, and its peak so far (bytes), from
/// /proc/self/status (VmRSS, VmHWM) or getrusage where that is missing.
std::int64_t resident_bytes();
std::int64_t peak_resident_bytes();

} // namespace ringattn::driver

#endif
