#ifndef RINGATTN_BACKWARDCASE_HPP
#define RINGATTN_BACKWARDCASE_HPP

// Runs the library's forward then backward on a test Problem (whole
// sequence, simulated members) and returns dQ, dK, dV as float64 vectors.

#include "RingAttn_BackwardReference.hpp"
#include "RingAttn_TestCase.hpp"

#include <string>
#include <vector>

namespace ringattn::test {

template <class ExecSpace, class Scalar>
Gradients run_api_backward(const Problem &p, const std::vector<double> &dout,
                           RingOptions options = {}) {
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
  attention.backward(q, k, v, o, lse, d_o, dq, dk, dv);
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
