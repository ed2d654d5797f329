#ifndef RINGATTN_DRIVER_FAULTINJECTION_HPP
#define RINGATTN_DRIVER_FAULTINJECTION_HPP

#include <cstdlib>
#include <string>

namespace ringattn::driver {

/// A testing hook for the fault tests (unit_tests/tools/run_mpi_faults.sh):
/// RINGATTN_TEST_FAULT=load:R fails rank R while it reads its inputs,
/// throw:R throws on rank R after its first ring step, kill:R kills rank R there.
struct TestFault {
  std::string kind;
  int rank = -1;
  static TestFault from_environment() {
    TestFault f;
    if (const char *e = std::getenv("RINGATTN_TEST_FAULT")) {
      const std::string s(e);
      const auto colon = s.find(':');
      if (colon != std::string::npos) {
        f.kind = s.substr(0, colon);
        f.rank = std::atoi(s.c_str() + colon + 1);
      }
    }
    return f;
  }
  bool at(const char *kind, int rank) const { return this->kind == kind && this->rank == rank; }
};

} // namespace ringattn::driver

#endif
