#ifndef RINGATTN_TESTSPACES_HPP
#define RINGATTN_TESTSPACES_HPP

// One test binary over all enabled host backends (ArborX style): templated
// test cases take an execution space from this list.
#include <Kokkos_Core.hpp>

#include <tuple>

namespace ringattn::test {

using ExecSpaces = std::tuple<
#ifdef KOKKOS_ENABLE_OPENMP
    Kokkos::OpenMP,
#endif
#ifdef KOKKOS_ENABLE_CUDA
    Kokkos::Cuda,
#endif
    Kokkos::Serial>;

} // namespace ringattn::test

#endif
