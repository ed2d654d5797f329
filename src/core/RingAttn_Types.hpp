#ifndef RINGATTN_TYPES_HPP
#define RINGATTN_TYPES_HPP

// View types of docs/SPEC.md section 1, row-major (LayoutRight) as at every boundary:
//   Q, O [B, N, H, D];  K, V [B, N, Hkv, D];  LSE [B, H, N].

#include <core/RingAttn_Half.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <type_traits>

namespace ringattn {

template <class Scalar, class MemorySpace>
using Tensor4 = Kokkos::View<Scalar ****, Kokkos::LayoutRight, MemorySpace>;
template <class Scalar, class MemorySpace>
using Tensor3 = Kokkos::View<Scalar ***, Kokkos::LayoutRight, MemorySpace>;

/// Compute and accumulation type for a storage type: float32 at least
/// (docs/SPEC.md section 1), float64 for float64 storage. It is also the
/// type of LSE and of the running O of a ring pass: float32 for float32,
/// bfloat16 and float16 storage.
template <class Scalar>
using accumulate_t = std::conditional_t<(sizeof(Scalar) >= sizeof(double)), double, float>;

/// An unmanaged view of `View`'s type over `data` (extents of any integer
/// type; Kokkos 3.4 wants them all of one type).
template <class View, class... Extents>
View wrap_view(typename View::pointer_type data, Extents... extents) {
  return View(data, static_cast<std::size_t>(extents)...);
}

} // namespace ringattn

#endif
