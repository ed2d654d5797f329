#ifndef RINGATTN_BACKWARDCASE_HPP
#define RINGATTN_BACKWARDCASE_HPP

// Runs the library's forward then backward on a test Problem (whole
// sequence, simulated members; or member by member through a
// BackwardMemberIO) and returns dQ, dK, dV as float64 vectors.

#include "RingAttn_BackwardReference.hpp"
#include "RingAttn_TestCase.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn::test {

/// A BackwardMemberIO over whole-sequence views: member p's rows sliced
/// out of them by the partition, its gradients put back by position.
template <class Scalar, class Mem>
class SlicingBackwardIO final : public BackwardMemberIO<Scalar, Mem> {
public:
  using T4 = Tensor4<Scalar, Mem>;
  using A3 = Tensor3<accumulate_t<Scalar>, Mem>;
  SlicingBackwardIO(const Partition &part, T4 q, T4 k, T4 v, T4 o, A3 lse, T4 dout, T4 dq, T4 dk,
                    T4 dv)
      : part_(part), q_(q), k_(k), v_(v), o_(o), dout_(dout), dq_(dq), dk_(dk), dv_(dv), lse_(lse) {
  }

  void load_queries(int p, const T4 &q, const T4 &o, const T4 &dout, const A3 &lse) override {
    ++query_loads;
    copy(p, q, q_, false);
    copy(p, o, o_, false);
    copy(p, dout, dout_, false);
    for (int r = 0; r < part_.num_ranges(); ++r) {
      const Range g = part_.range(p, r);
      if (g.size() == 0) continue;
      const std::int64_t l = part_.range_local_begin(p, r);
      Kokkos::deep_copy(
          Kokkos::subview(lse, Kokkos::ALL, Kokkos::ALL, Kokkos::make_pair(l, l + g.size())),
          Kokkos::subview(lse_, Kokkos::ALL, Kokkos::ALL, Kokkos::make_pair(g.begin, g.end)));
    }
  }
  void load_kv(int p, const T4 &k, const T4 &v) override {
    copy(p, k, k_, false);
    copy(p, v, v_, false);
  }
  void store_dq(int p, const T4 &dq) override {
    ++dq_stores;
    copy(p, dq, dq_, true);
  }
  void store_dkv(int p, const T4 &dk, const T4 &dv) override {
    ++dkv_stores;
    copy(p, dk, dk_, true);
    copy(p, dv, dv_, true);
  }
  int query_loads = 0, dq_stores = 0, dkv_stores = 0;

private:
  void copy(int p, const T4 &local, const T4 &global, bool to_global) const {
    for (int r = 0; r < part_.num_ranges(); ++r) {
      const Range g = part_.range(p, r);
      if (g.size() == 0) continue;
      const std::int64_t l = part_.range_local_begin(p, r);
      auto loc = Kokkos::subview(local, Kokkos::ALL, Kokkos::make_pair(l, l + g.size()),
                                 Kokkos::ALL, Kokkos::ALL);
      auto glo = Kokkos::subview(global, Kokkos::ALL, Kokkos::make_pair(g.begin, g.end),
                                 Kokkos::ALL, Kokkos::ALL);
      if (to_global)
        Kokkos::deep_copy(glo, loc);
      else
        Kokkos::deep_copy(loc, glo);
    }
  }
  Partition part_;
  T4 q_, k_, v_, o_, dout_, dq_, dk_, dv_;
  A3 lse_;
};

/// The backward through the whole-sequence views (`through_io` false) or a
/// SlicingBackwardIO over them (true).
template <class ExecSpace, class Scalar>
Gradients run_api_backward(const Problem &p, const std::vector<double> &dout,
                           RingOptions options = {}, bool through_io = false) {
  using Mem = typename ExecSpace::memory_space;
  auto upload = [&](const std::vector<double> &x, int heads, const char *label) {
    Tensor4<Scalar, Mem> view(std::string(label), std::size_t(p.B), std::size_t(p.N),
                              std::size_t(heads), std::size_t(p.D));
    auto host = Kokkos::create_mirror_view(view);
    for (std::size_t i = 0; i < x.size(); ++i) host.data()[i] = Scalar(x[i]);
    Kokkos::deep_copy(view, host);
    return view;
  };
  auto make4 = [&](int heads, const char *label) {
    return Tensor4<Scalar, Mem>(std::string(label), std::size_t(p.B), std::size_t(p.N),
                                std::size_t(heads), std::size_t(p.D));
  };
  auto q = upload(p.q, p.H, "q");
  auto k = upload(p.k, p.Hkv, "k");
  auto v = upload(p.v, p.Hkv, "v");
  auto d_o = upload(dout, p.H, "do");
  auto o = make4(p.H, "o");
  Tensor3<accumulate_t<Scalar>, Mem> lse("lse", std::size_t(p.B), std::size_t(p.H),
                                         std::size_t(p.N));
  auto dq = make4(p.H, "dq");
  auto dk = make4(p.Hkv, "dk");
  auto dv = make4(p.Hkv, "dv");
  if (p.scale > 0) options.scale = p.scale;
  RingAttention<ExecSpace, Scalar> attention(p.pattern(), options);
  attention.forward(q, k, v, o, lse);
  if (through_io) {
    const Partition part(options.partition, p.N, options.members);
    SlicingBackwardIO<Scalar, Mem> io(part, q, k, v, o, lse, d_o, dq, dk, dv);
    attention.backward(io, p.B, p.D);
    // one store of each member's final gradients
    if (io.dq_stores != options.members || io.dkv_stores != options.members)
      throw std::logic_error("run_api_backward: a member's gradients stored other than once");
  } else {
    attention.backward(q, k, v, o, lse, d_o, dq, dk, dv);
  }
  auto back = [](const Tensor4<Scalar, Mem> &x) {
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
    std::vector<double> out(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) out[i] = double(h.data()[i]);
    return out;
  };
  return Gradients{back(dq), back(dk), back(dv)};
}

/// Bitwise equality of two results (NaN never equal).
inline bool identical(const std::vector<double> &a, const std::vector<double> &b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

} // namespace ringattn::test

#endif
