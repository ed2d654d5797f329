#include "ProcessMemory.hpp"

#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <fstream>
#include <string>

namespace ringattn::driver {

namespace {
std::int64_t status_kib(const std::string &field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}
} // namespace

std::int64_t resident_bytes() {
  const std::int64_t kib = status_kib("VmRSS");
  return kib >= 0 ? kib * 1024 : peak_resident_bytes();
}

std::int64_t peak_resident_bytes() {
  const std::int64_t kib = status_kib("VmHWM");
  if (kib >= 0) return kib * 1024;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return std::int64_t(usage.ru_maxrss) * 1024;
}

void return_freed_memory() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  malloc_trim(0);
#endif
}

bool reset_peak_resident() {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear) return false;
  clear << "5";
  return bool(clear.flush());
}

} // namespace ringattn::driver
