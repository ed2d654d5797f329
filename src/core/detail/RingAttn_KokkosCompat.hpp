#ifndef RINGATTN_KOKKOSCOMPAT_HPP
#define RINGATTN_KOKKOSCOMPAT_HPP

// The one place that knows which Kokkos version is in use. Kokkos 3.4 keeps
// its math functions in Kokkos::Experimental; 3.7 and later (4.x, 5.x) have
// them in Kokkos::. Everything else in RingAttn is written to the API common
// to 3.4 through 5.x.
#include <Kokkos_Core.hpp>

#include <cmath>

#if KOKKOS_VERSION >= 30700
#define RINGATTN_KOKKOS_MATH Kokkos
#else
#define RINGATTN_KOKKOS_MATH Kokkos::Experimental
#endif

namespace ringattn::Details::compat {

template <class T>
KOKKOS_INLINE_FUNCTION T exp(T x) {
  return RINGATTN_KOKKOS_MATH::exp(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T log(T x) {
  return RINGATTN_KOKKOS_MATH::log(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T sqrt(T x) {
  return RINGATTN_KOKKOS_MATH::sqrt(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION bool isfinite(T x) {
  return RINGATTN_KOKKOS_MATH::isfinite(x);
}

template <class T>
KOKKOS_INLINE_FUNCTION constexpr T infinity() {
  // HUGE_VAL is +inf for IEEE doubles and usable in device code; Kokkos'
  // numeric traits moved between 3.x (infinity<T>::value) and 4.x (infinity_v).
  return static_cast<T>(HUGE_VAL);
}

/// Whether ExecSpace runs on the host CPU (the CBLAS fast path may run there).
template <class ExecSpace>
inline constexpr bool is_host_execution_v =
    Kokkos::SpaceAccessibility<ExecSpace, Kokkos::HostSpace>::accessible;

} // namespace ringattn::Details::compat

#endif
