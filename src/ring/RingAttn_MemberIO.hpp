#ifndef RINGATTN_MEMBERIO_HPP
#define RINGATTN_MEMBERIO_HPP

// How an application feeds the simulated ring one member at a time
// (RingAttention::forward with a MemberIO).

#include <core/RingAttn_Types.hpp>

namespace ringattn {

/// Where the simulated ring gets a member's rows and puts its result. Views
/// are [B, n_p, H or Hkv, D] and [B, H, n_p] in the member's local row order.
/// LSE is in the accumulate type (float for 16-bit storage, docs/SPEC.md section 1).
template <class Scalar, class MemorySpace>
class MemberIO {
public:
  virtual ~MemberIO() = default;
  virtual void load_q(int member, const Tensor4<Scalar, MemorySpace> &q) = 0;
  virtual void load_kv(int member, const Tensor4<Scalar, MemorySpace> &k,
                       const Tensor4<Scalar, MemorySpace> &v) = 0;
  virtual void store(int member, const Tensor4<Scalar, MemorySpace> &o,
                     const Tensor3<accumulate_t<Scalar>, MemorySpace> &lse) = 0;
};

} // namespace ringattn

#endif
