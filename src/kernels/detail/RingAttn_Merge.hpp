#ifndef RINGATTN_MERGE_HPP
#define RINGATTN_MERGE_HPP

// The log-sum-exp merge of two partial results (SPEC section 3):
//   L = max(La, Lb) + log(e^(La - max) + e^(Lb - max)),
//   O = e^(La - L) Oa + e^(Lb - L) Ob,
// used across dilation branches and across ring steps. A side with L = -inf
// saw no key and contributes nothing; two empty sides stay empty (O = 0,
// L = -inf), so no NaN can appear from finite inputs. A NaN side (a row
// that saw a NaN or +inf score, docs/reliability.md) stays NaN.

#include <core/detail/RingAttn_KokkosCompat.hpp>

namespace ringattn::Details {

/// Weights (wa, wb) and merged LSE of two partials with LSEs la and lb.
template <class T>
struct MergeWeights {
  T wa;
  T wb;
  T lse;
};

template <class T>
KOKKOS_INLINE_FUNCTION MergeWeights<T> lse_merge(T la, T lb) {
  const T ninf = -compat::infinity<T>();
  if (lb == ninf) return {T(1), T(0), la};
  if (la == ninf) return {T(0), T(1), lb};
  const T mx = la > lb ? la : lb;
  const T ea = compat::exp(la - mx);
  const T eb = compat::exp(lb - mx);
  const T sum = ea + eb;
  return {ea / sum, eb / sum, mx + compat::log(sum)};
}

} // namespace ringattn::Details

#endif
