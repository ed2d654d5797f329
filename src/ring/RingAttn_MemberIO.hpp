#ifndef RINGATTN_MEMBERIO_HPP
#define RINGATTN_MEMBERIO_HPP

// How an application feeds the simulated ring one member at a time
// (RingAttention::forward with a MemberIO, RingAttention::backward with a
// BackwardMemberIO).

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

/// Where the simulated ring's backward (docs/SPEC.md section 7) gets a member's rows and
/// puts its gradients, one member at a time, so that its memory grows as
/// N / R. Views are [B, n_p, H or Hkv, D] and [B, H, n_p] in the member's
/// local row order; O and LSE are the forward's. The pass runs twice over
/// the ring (dQ member by member, then dK and dV member by member), so a
/// member's queries and K/V are loaded more than once: each store_* is
/// called once per member, with its final gradients.
template <class Scalar, class MemorySpace>
class BackwardMemberIO {
public:
  virtual ~BackwardMemberIO() = default;
  virtual void load_queries(int member, const Tensor4<Scalar, MemorySpace> &q,
                            const Tensor4<Scalar, MemorySpace> &o,
                            const Tensor4<Scalar, MemorySpace> &dout,
                            const Tensor3<accumulate_t<Scalar>, MemorySpace> &lse) = 0;
  virtual void load_kv(int member, const Tensor4<Scalar, MemorySpace> &k,
                       const Tensor4<Scalar, MemorySpace> &v) = 0;
  virtual void store_dq(int member, const Tensor4<Scalar, MemorySpace> &dq) = 0;
  virtual void store_dkv(int member, const Tensor4<Scalar, MemorySpace> &dk,
                         const Tensor4<Scalar, MemorySpace> &dv) = 0;
};

} // namespace ringattn

#endif
