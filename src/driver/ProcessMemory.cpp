#include "ProcessMemory.hpp"

#include <sys/resource.h>

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

} // namespace ringattn::driver
