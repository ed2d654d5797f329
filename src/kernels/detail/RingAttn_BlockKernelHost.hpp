#ifndef RINGATTN_BLOCKKERNELHOST_HPP
#define RINGATTN_BLOCKKERNELHOST_HPP

// Host fast path of the block kernel (docs/DESIGN.md layer 2): the same work items
// and the same streaming softmax as the portable kernel, with the two tile
// products S = scale Q K^T and O += P V done by CBLAS sgemm (OpenBLAS) on
// one core each. Queries of a dilated task are rows q_row0 + c * r, which is
// just a leading dimension of r * H * D for the GEMM; keys and values of a
// run are contiguous in the K/V block. Float storage on host spaces only;
// everything else takes the portable kernel, which is tested beside it.

#include <RingAttn_Config.hpp>
#include <core/RingAttn_Half.hpp>

#include <type_traits>

namespace ringattn::Details {
/// Storage types the host fast path takes: float, and the 16-bit types,
/// whose tiles it widens to float in scratch before the GEMMs.
template <class Scalar>
inline constexpr bool host_tile_type_v =
    std::is_same_v<Scalar, float> || is_16bit_storage_v<Scalar>;
} // namespace ringattn::Details

#ifdef RINGATTN_ENABLE_BLAS

#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_KernelArgs.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <kernels/detail/RingAttn_Cblas.hpp>

#include <cstdint>
#include <cstring>

namespace ringattn::Details {

template <class To, class From>
inline To host_bit_cast(const From &from) {
#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define RINGATTN_HOST_HAS_BIT_CAST
#endif
#endif
#ifdef RINGATTN_HOST_HAS_BIT_CAST
  return __builtin_bit_cast(To, from);
#else
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
#endif
}

/// exp(x) for x <= 0: exp_nonpositive's polynomial with its clamps done on
/// the float's bits. GCC keeps IEEE traps by default (-ftrapping-math) and
/// then will not vectorize a float compare-and-select on AVX2; this form
/// vectorizes (measured 0.30 instead of 2.4 ns per element on one core).
/// x below -88, -inf and NaN give exactly 0 (a positive x is taken as -x;
/// the kernel never passes one).
inline float exp_nonpositive_host(float x) {
  // With the sign bit set, a float's bits as uint32 grow with its magnitude,
  // so clamping x at -88 is an unsigned min (no select for GCC to branch on).
  constexpr std::uint32_t lo = 0xC2B00000u; // -88.0f
  std::uint32_t u = host_bit_cast<std::uint32_t>(x) | 0x80000000u;
  u = u < lo ? u : lo;
  const float xc = host_bit_cast<float>(u);
  // n = round(x log2 e) from the low mantissa bits of x log2 e + 1.5 * 2^23;
  // y = x - n ln 2 in two steps (Cody-Waite); e^y by its degree-7 Taylor
  // polynomial (|y| <= 0.35); 2^n from its exponent bits, n in [-127, 0]
  // (n = -127 gives 0).
  constexpr float shifter = 12582912.0f;
  const float shifted = xc * 1.4426950408889634f + shifter;
  const float fn = shifted - shifter;
  const std::int32_t n = host_bit_cast<std::int32_t>(shifted) - 0x4B400000;
  const float y = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * y + 1.0f / 720.0f;
  p = p * y + 1.0f / 120.0f;
  p = p * y + 1.0f / 24.0f;
  p = p * y + 1.0f / 6.0f;
  p = p * y + 0.5f;
  p = p * y + 1.0f;
  p = p * y + 1.0f;
  return p * host_bit_cast<float>((n + 127) << 23);
}

template <class ExecSpace, class Scalar = float>
struct HostBlockAttentionFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
  static_assert(host_tile_type_v<Scalar>, "the host path takes float and 16-bit storage");
  /// 16-bit storage: the Q tile and each K/V tile widened to float in scratch.
  static constexpr bool widen = !std::is_same_v<Scalar, float>;

  BlockKernelArgs<memory_space, Scalar> args;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    const std::size_t widened = widen ? std::size_t(QT) * D + 2 * std::size_t(KT) * D : 0;
    return std::size_t(QT) * KT + std::size_t(QT) * D + 2 * std::size_t(QT) + widened;
  }

  void operator()(const member_type &team) const {
    constexpr float ninf = -compat::infinity<float>();
    [[maybe_unused]] const int H = int(args.q.extent(2));
    const int D = int(args.q.extent(3));
    const int QT = args.q_tile, KT = args.k_tile;
    const QueryTile query =
        QueryTile::of_team(team.league_rank(), args.num_items, args.items, args.tasks, QT);
    const std::int64_t b = query.b, stride = query.stride;
    const int h = query.h, nq = query.nq;

    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, D));
    float *const s = scratch.data();               // [QT][KT] scores, then probabilities
    float *const acc = s + std::size_t(QT) * KT;   // [QT][D] unnormalized output
    float *const mrow = acc + std::size_t(QT) * D; // running max
    float *const lrow = mrow + QT;                 // running denominator
    float *const qwide = lrow + QT;                // 16-bit: [QT][D], [KT][D], [KT][D]
    float *const kwide = qwide + std::size_t(QT) * D;
    float *const vwide = kwide + std::size_t(KT) * D;

    const float *qbase;
    int ldq;
    if constexpr (widen) {
      for (int i = 0; i < nq; ++i) {
        const Scalar *const qrow = &args.q(b, query.qrow(i), h, 0);
        for (int d = 0; d < D; ++d) qwide[std::size_t(i) * D + d] = float(qrow[d]);
      }
      qbase = qwide;
      ldq = D;
    } else {
      qbase = &args.q(b, query.qrow_first, h, 0);
      ldq = int(stride * H * D);
    }
    for (int i = 0; i < nq; ++i) {
      mrow[i] = ninf;
      lrow[i] = 0;
    }
    for (std::size_t e = 0; e < std::size_t(nq) * D; ++e) acc[e] = 0;

    for (int r = 0; r < query.task.num_key_runs; ++r) {
      const KeyRun run = query.task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        KeyTile key = KeyTile::of_run(run, k0, stride, KT);
        if (args.causal) {
          if (key.kpos_first > query.qpos_last) break;
          // keys past the tile's last query are masked for every row: leave
          // them out of both GEMMs (a diagonal tile is then at most QT wide)
          const std::int64_t seen = (query.qpos_last - key.kpos_first) / stride + 1;
          if (seen < key.nk) key.nk = int(seen);
        }
        const CausalBounds bounds = CausalBounds::of(args.causal, query, key);
        const int nk = key.nk;
        const float *kbase, *vbase;
        if constexpr (widen) {
          const Scalar *const ksrc = &args.kv(0, b, key.krow_first, 0);
          const Scalar *const vsrc = &args.kv(1, b, key.krow_first, 0);
          for (std::size_t e = 0; e < std::size_t(nk) * D; ++e) {
            kwide[e] = float(ksrc[e]);
            vwide[e] = float(vsrc[e]);
          }
          kbase = kwide;
          vbase = vwide;
        } else {
          kbase = &args.kv(0, b, key.krow_first, 0);
          vbase = &args.kv(1, b, key.krow_first, 0);
        }

        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, args.scale, qbase, ldq,
                    kbase, D, 0.0f, s, KT);
        for (int i = 0; i < nq; ++i) {
          float *const srow = s + std::size_t(i) * KT;
          // keys kept: j < nk, and kpos <= qpos when masked (positions share the stride)
          const int keep = bounds.kept(query, key, i);
          float mx = ninf;
#pragma omp simd reduction(max : mx)
          for (int j = 0; j < keep; ++j) {
            const float sm = score_for_max(srow[j]); // NaN, +inf: +inf (FastExp.hpp)
            mx = sm > mx ? sm : mx;
          }
          const float mold = mrow[i];
          const float mnew = mx > mold ? mx : mold;
          if (mnew == ninf) {
            for (int j = 0; j < nk; ++j) srow[j] = 0;
            continue;
          }
          float sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int j = 0; j < keep; ++j) {
            const float p = exp_nonpositive_host(srow[j] - mnew);
            srow[j] = p;
            sum += p;
          }
          // A NaN or +inf score made the maximum +inf (score_for_max): the
          // row becomes NaN (docs/reliability.md), which the vector exp,
          // mapping NaN to 0, would hide.
          if (!(mnew < compat::infinity<float>())) sum = NAN;
          for (int j = keep; j < nk; ++j) srow[j] = 0;
          const float alpha = exp_nonpositive_host(mold - mnew);
          if (alpha != 1.0f) {
            float *const arow = acc + std::size_t(i) * D;
            for (int d = 0; d < D; ++d) arow[d] *= alpha;
          }
          lrow[i] = lrow[i] * alpha + sum;
          mrow[i] = mnew;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, nk, 1.0f, s, KT, vbase, D,
                    1.0f, acc, D);
      }
    }

    for (int i = 0; i < nq; ++i) {
      const float l = lrow[i];
      if (l == 0.0f) continue; // saw no key in this block (l is NaN after a NaN score)
      const std::int64_t row = query.qrow(i);
      const MergeWeights<float> w = lse_merge<float>(args.lse(b, h, row), mrow[i] + compat::log(l));
      const float wb = w.wb / l;
      float *const orow = &args.o(b, row, h, 0);
      const float *const arow = acc + std::size_t(i) * D;
      for (int d = 0; d < D; ++d) orow[d] = w.wa * orow[d] + wb * arow[d];
      args.lse(b, h, row) = w.lse;
    }
  }
};

/// Keeps OpenBLAS on one thread inside a Kokkos host parallel region (its own
/// threads would oversubscribe the cores), restoring the caller's setting.
class SingleThreadedBlas {
public:
#ifdef RINGATTN_HAVE_OPENBLAS_THREADS
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(previous_); }
#else
  SingleThreadedBlas() = default;
#endif
  SingleThreadedBlas(const SingleThreadedBlas &) = delete;
  SingleThreadedBlas &operator=(const SingleThreadedBlas &) = delete;

private:
  int previous_ = 1;
};

} // namespace ringattn::Details

#endif // RINGATTN_ENABLE_BLAS
#endif
