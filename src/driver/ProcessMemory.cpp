#include "ProcessMemory.hpp"

#include <sys/resource.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <fstream>
#include <string>
#include <utility>

namespace ringattn::driver {

namespace {
std::int64_t status_kib(const std::string &field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}
/// The first number in a file (a cgroup limit or usage), or -1 ("max", missing).
std::int64_t file_number(const char *path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word.empty() || word.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  try {
    return std::stoll(word);
  } catch (const std::exception &) {
    return -1; // larger than 2^63: no limit
  }
}
} // namespace

std::int64_t available_host_bytes() {
  std::int64_t avail = -1;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line))
    if (line.rfind("MemAvailable:", 0) == 0) avail = std::stoll(line.substr(13)) * 1024;
  // cgroup v2, then v1: the room left under the limit
  // (a named array: nvcc 11.8 cannot deduce a braced list of pairs in a range-for)
  const std::pair<const char *, const char *> cgroup_files[] = {
      {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
      {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
       "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
  for (const auto &[limit_file, usage_file] : cgroup_files) {
    const std::int64_t limit = file_number(limit_file), usage = file_number(usage_file);
    if (limit < 0 || usage < 0) continue;
    const std::int64_t room = limit > usage ? limit - usage : 0;
    if (avail < 0 || room < avail) avail = room;
    break;
  }
  return avail;
}

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
