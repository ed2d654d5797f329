#ifndef RINGATTN_MPITESTCASE_HPP
#define RINGATTN_MPITESTCASE_HPP

// What the MPI tests share: one rank's rows of a test problem's tensors.

#include "RingAttn_TestCase.hpp"

namespace ringattn::test {

/// This rank's rows of a [B, N, heads, D] tensor (flat, global order) as a
/// local view in the partition's row order.
template <class Scalar = float>
Tensor4<Scalar, Kokkos::DefaultExecutionSpace::memory_space>
local_rows(const std::vector<double> &x, const Problem &p, int heads, const Partition &part,
           int rank) {
  const std::int64_t n = part.local_size(rank);
  Tensor4<Scalar, Kokkos::DefaultExecutionSpace::memory_space> view(
      "local", std::size_t(p.B), std::size_t(n), std::size_t(heads), std::size_t(p.D));
  auto host = Kokkos::create_mirror_view(view);
  for (int b = 0; b < p.B; ++b)
    for (std::int64_t row = 0; row < n; ++row) {
      const std::int64_t t = part.global_position(rank, row);
      for (int h = 0; h < heads; ++h)
        for (int d = 0; d < p.D; ++d)
          host(b, row, h, d) = Scalar(x[((b * p.N + t) * heads + h) * p.D + d]);
    }
  Kokkos::deep_copy(view, host);
  return view;
}

} // namespace ringattn::test

#endif
