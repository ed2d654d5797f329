#ifndef RINGATTN_BLOCKKERNELHOST_HPP
#define RINGATTN_BLOCKKERNELHOST_HPP

// Host fast path of the block kernel (DESIGN layer 2): the same work items
// and the same streaming softmax as the portable kernel, with the two tile
// products S = scale Q K^T and O += P V done by CBLAS sgemm (OpenBLAS) on
// one core each. Queries of a dilated task are rows q_row0 + c * r, which is
// just a leading dimension of r * H * D for the GEMM; keys and values of a
// run are contiguous in the K/V block. Float storage on host spaces only;
// everything else takes the portable kernel, which is tested beside it.

#include <RingAttn_Config.hpp>

#ifdef RINGATTN_ENABLE_BLAS

#include <core/RingAttn_Types.hpp>
#include <core/detail/RingAttn_KokkosCompat.hpp>
#include <kernels/detail/RingAttn_BlockTask.hpp>
#include <kernels/detail/RingAttn_FastExp.hpp>
#include <kernels/detail/RingAttn_Merge.hpp>

#include <cblas.h>

#include <cstdint>

namespace ringattn::Details {

template <class ExecSpace>
struct HostBlockAttentionFunctor {
  using memory_space = typename ExecSpace::memory_space;
  using member_type = typename Kokkos::TeamPolicy<ExecSpace>::member_type;
  using ScratchView = Kokkos::View<float *, typename ExecSpace::scratch_memory_space,
                                   Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

  Kokkos::View<const float ****, Kokkos::LayoutRight, memory_space> q;  // [B, n, H, D]
  Kokkos::View<const float ****, Kokkos::LayoutRight, memory_space> kv; // [2, B, rows, D]
  Kokkos::View<const BlockTask *, memory_space> tasks;
  Kokkos::View<const WorkItem *, memory_space> items;
  Kokkos::View<float ****, Kokkos::LayoutRight, memory_space> o;  // [B, n, H, D]
  Kokkos::View<float ***, Kokkos::LayoutRight, memory_space> lse; // [B, H, n]
  std::int64_t num_items = 0;
  int q_tile = 0;
  int k_tile = 0;
  float scale = 1;
  bool causal = false;

  static std::size_t scratch_elements(int QT, int KT, int D) {
    return std::size_t(QT) * KT + std::size_t(QT) * D + 2 * std::size_t(QT);
  }

  void operator()(const member_type &team) const {
    constexpr float ninf = -compat::infinity<float>();
    const int H = int(q.extent(2)), D = int(q.extent(3)), QT = q_tile, KT = k_tile;
    const std::int64_t b = team.league_rank() / num_items;
    const WorkItem item = items(team.league_rank() % num_items);
    const BlockTask task = tasks(item.task);
    const int h = task.head;
    const std::int64_t stride = task.stride;
    const std::int64_t rem = task.q_count - item.q_begin;
    const int nq = rem < QT ? int(rem) : QT;
    const std::int64_t qpos_first = task.q_pos0 + item.q_begin * stride;
    const std::int64_t qpos_last = qpos_first + (nq - 1) * stride;
    const std::int64_t qrow_first = task.q_row0 + item.q_begin * stride;
    const float *const qbase = &q(b, qrow_first, h, 0);
    const int ldq = int(stride * H * D);

    ScratchView scratch(team.team_scratch(1), scratch_elements(QT, KT, D));
    float *const s = scratch.data();               // [QT][KT] scores, then probabilities
    float *const acc = s + std::size_t(QT) * KT;   // [QT][D] unnormalized output
    float *const mrow = acc + std::size_t(QT) * D; // running max
    float *const lrow = mrow + QT;                 // running denominator
    for (int i = 0; i < nq; ++i) {
      mrow[i] = ninf;
      lrow[i] = 0;
    }
    for (std::size_t e = 0; e < std::size_t(nq) * D; ++e) acc[e] = 0;

    for (int r = 0; r < task.num_key_runs; ++r) {
      const KeyRun run = task.key_runs[r];
      for (std::int64_t k0 = 0; k0 < run.count; k0 += KT) {
        const std::int64_t krem = run.count - k0;
        const int nk = krem < KT ? int(krem) : KT;
        const std::int64_t kpos_first = run.pos0 + k0 * stride;
        if (causal && kpos_first > qpos_last) break;
        const bool masked = causal && kpos_first + (nk - 1) * stride > qpos_first;
        const float *const kbase = &kv(0, b, run.block_row + k0, 0);
        const float *const vbase = &kv(1, b, run.block_row + k0, 0);

        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, D, scale, qbase, ldq, kbase, D,
                    0.0f, s, KT);
        for (int i = 0; i < nq; ++i) {
          float *const srow = s + std::size_t(i) * KT;
          // keys kept: j < nk, and kpos <= qpos when masked (positions share the stride)
          int keep = nk;
          if (masked) {
            const std::int64_t lim = (qpos_first - kpos_first) / stride + i + 1;
            keep = lim < 0 ? 0 : (lim < nk ? int(lim) : nk);
          }
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
            const float p = score_weight(srow[j], mnew); // NaN, +inf: NaN
            srow[j] = p;
            sum += p;
          }
          for (int j = keep; j < nk; ++j) srow[j] = 0;
          const float alpha = exp_nonpositive(mold - mnew);
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
      const std::int64_t row = qrow_first + i * stride;
      const MergeWeights<float> w = lse_merge<float>(lse(b, h, row), mrow[i] + compat::log(l));
      const float wb = w.wb / l;
      float *const orow = &o(b, row, h, 0);
      const float *const arow = acc + std::size_t(i) * D;
      for (int d = 0; d < D; ++d) orow[d] = w.wa * orow[d] + wb * arow[d];
      lse(b, h, row) = w.lse;
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
