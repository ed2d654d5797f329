#ifndef RINGATTN_DRIVER_INPUTCHECKS_HPP
#define RINGATTN_DRIVER_INPUTCHECKS_HPP

// NaN and infinity scans (input.check_finite, docs/SPEC.md section 5) of a
// member's inputs as they are loaded, and of its outputs.

#include "Deck.hpp"
#include "InputData.hpp"

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn::driver {

/// A NaN or an infinity in the inputs (input.check_finite): exit 2.
class NonFiniteInput : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Flat index of the first element of data[0, count) that is NaN or +-inf,
/// or -1 when all are finite. One parallel pass on the host. Scalar: float,
/// double or a 16-bit storage type.
template <class Scalar>
std::int64_t first_nonfinite(const Scalar *data, std::int64_t count) {
  std::int64_t first = std::numeric_limits<std::int64_t>::max();
  Kokkos::parallel_reduce(
      "ringattn::check_finite",
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::IndexType<std::int64_t>>(
          0, count),
      [=](const std::int64_t i, std::int64_t &m) {
        if (!std::isfinite(double(data[i])) && i < m) m = i;
      },
      Kokkos::Min<std::int64_t>(first));
  return first < count ? first : -1;
}

/// Throws NonFiniteInput naming the tensor, its file, and the (batch,
/// position, head) of the first NaN or infinity in member p's rows `host`
/// [B, n, heads, D] of tensor `id`.
template <class Scalar>
void check_member_finite(const RunConfig &cfg, TensorId id, const Partition &part, int p,
                         const Scalar *host, std::int64_t count) {
  const std::int64_t bad = first_nonfinite(host, count);
  if (bad < 0) return;
  const std::int64_t D = cfg.problem.head_dim;
  const bool q_shaped = id == TensorId::q || id == TensorId::dout;
  const std::int64_t heads = q_shaped ? cfg.problem.heads : cfg.problem.kv_heads;
  const std::int64_t n = part.local_size(p);
  const std::int64_t d = bad % D, h = (bad / D) % heads, row = (bad / D / heads) % n;
  const std::int64_t b = bad / D / heads / n;
  const std::int64_t t = part.global_position(p, row);
  const double value = double(host[bad]);
  const char *name = id == TensorId::q      ? "q"
                     : id == TensorId::k    ? "k"
                     : id == TensorId::dout ? "do"
                                            : "v";
  const std::string &file = id == TensorId::q      ? cfg.input.q
                            : id == TensorId::k    ? cfg.input.k
                            : id == TensorId::dout ? cfg.input.dout
                                                   : cfg.input.v;
  const std::string what = std::isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf";
  throw NonFiniteInput(cfg.where(std::string("input.") + name) + ": " + file + ": " + what +
                       " in " + name + " at batch " + std::to_string(b) + ", position " +
                       std::to_string(t) + ", head " + std::to_string(h) + " (dim " +
                       std::to_string(d) +
                       "); fix the input, or set input.check_finite: false to run anyway");
}

/// Member p's rows of one tensor from the input, into a device view; with
/// `check`, the rows are scanned for NaN and infinities first (host copy).
template <class Scalar, class Mem>
void load_member(const InputData &data, TensorId id, const Partition &part, int p,
                 const Tensor4<Scalar, Mem> &view, const RunConfig *check = nullptr) {
  auto host = Kokkos::create_mirror_view(view);
  data.fill_member(id, part, p, host.data());
  if (check) check_member_finite(*check, id, part, p, host.data(), std::int64_t(host.span()));
  Kokkos::deep_copy(view, host);
}

/// Loads members' rows of the inputs for the simulated ring, which loads a
/// member again on every repeat and pass: each (tensor, member) is scanned
/// for NaN and infinities once (input.check_finite), the first time.
class MemberLoader {
public:
  MemberLoader(const RunConfig &cfg, const InputData &data, const Partition &part, bool check)
      : cfg_(cfg), data_(data), part_(part),
        unchecked_(check ? 4 * std::size_t(part.members) : 0, true) {}

  template <class Scalar, class Mem>
  void load(TensorId id, int p, const Tensor4<Scalar, Mem> &view) {
    const std::size_t slot = std::size_t(id) * std::size_t(part_.members) + std::size_t(p);
    const bool check = slot < unchecked_.size() && unchecked_[slot];
    load_member(data_, id, part_, p, view, check ? &cfg_ : nullptr);
    if (check) unchecked_[slot] = false;
  }

private:
  const RunConfig &cfg_;
  const InputData &data_;
  const Partition &part_;
  std::vector<bool> unchecked_; // (tensor, member) not yet scanned: q, k, v, dout
};

/// Whether a finished member's outputs hold a value docs/SPEC.md section 2 rules out:
/// NaN or an infinity in O, NaN or +inf in LSE (-inf is an empty row).
template <class Scalar, class Lse>
bool outputs_nonfinite(const Scalar *o, std::int64_t o_count, const Lse *lse,
                       std::int64_t lse_count) {
  if (first_nonfinite(o, o_count) >= 0) return true;
  std::int64_t bad = 0;
  Kokkos::parallel_reduce(
      "ringattn::check_lse",
      Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace, Kokkos::IndexType<std::int64_t>>(
          0, lse_count),
      [=](const std::int64_t i, std::int64_t &sum) {
        if (std::isnan(lse[i]) || (std::isinf(lse[i]) && lse[i] > 0)) ++sum;
      },
      bad);
  return bad > 0;
}

} // namespace ringattn::driver

#endif
