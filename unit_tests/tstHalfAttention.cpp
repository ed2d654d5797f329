// 16-bit storage through the API (docs/SPEC.md section 1): bfloat16 and
// float16 Q, K, V and O, float32 LSE, all arithmetic in float32. Against the
// float64 reference computed from the rounded inputs (in [-1, 1)): O within
// 1e-2 (bfloat16) and 2e-3 (float16), LSE within 1e-3, on the host fast path
// and the portable kernel, one member and simulated rings, every backend.
// The backward in 16 bits (dO in, dQ, dK, dV out, float32 inside; on the
// host the widened float sweep and the portable kernels): against
// the float64 gradients of the rounded inputs, within 2e-2 (bfloat16) and
// 3e-3 (float16) of max(1, the largest gradient).
#include <catch2/catch.hpp>

#include "RingAttn_BackwardCase.hpp"
#include "RingAttn_TestCase.hpp"
#include "RingAttn_TestSpaces.hpp"

#include <random>

using namespace ringattn;
using namespace ringattn::test;

namespace {

template <class Scalar>
constexpr double o_tolerance = std::is_same_v<Scalar, bfloat16_t> ? 1e-2 : 2e-3;
constexpr double lse_tolerance = 1e-3;

template <class ExecSpace, class Scalar>
void check_16bit(const Problem &p, const RingOptions &options) {
  const Reference ref =
      reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
  const Output out = run_api<ExecSpace, Scalar>(p, options);
  CHECK(max_abs_error(out.o, ref.o) <= o_tolerance<Scalar>);
  CHECK(max_abs_error(out.lse, ref.lse) <= lse_tolerance);
  // O holds exactly the storage type's values
  std::size_t not_representable = 0;
  for (double x : out.o)
    if (double(float(Scalar(x))) != x) ++not_representable;
  CHECK(not_representable == 0);
}

template <class ExecSpace, class Scalar>
void check_problem(const Problem &raw) {
  const Problem p = rounded_to<Scalar>(raw);
  INFO(p.describe());
  // the host path with tiles widened to float (sgemm, and the AVX-512 tile
  // where built for AVX-512; its bfloat16 scores are VDPBF16PS dot products
  // of the stored values where built for AVX512-BF16), with MKL's 16-bit GEMMs (where built with
  // MKL), the portable kernel, and (bfloat16, where the build and the CPU
  // have it) the host path on AMX
  for (int kernel : {0, 1, 2, 3, 4})
    for (int members : {1, 3}) {
      if (kernel == 1 && !Details::host_native_16bit_gemm) continue;
      if (kernel == 3 && !(std::is_same_v<Scalar, bfloat16_t> && Details::amx_permitted()))
        continue;
      if (kernel == 4 && !Details::host_avx512_available()) continue;
      INFO((kernel == 0   ? "host, widened, sgemm"
            : kernel == 1 ? "host, 16-bit GEMM"
            : kernel == 2 ? "portable"
            : kernel == 3 ? "host, AMX"
                          : "host, AVX-512 tile (bfloat16 scores by VDPBF16PS where built)")
           << ", members " << members);
      RingOptions options;
      options.members = members;
      options.partition = members == 3 ? PartitionKind::zigzag : PartitionKind::contiguous;
      Tiling tiling =
          kernel == 2 ? small_portable_tiles<ExecSpace>() : default_tiling<ExecSpace, Scalar>(p.D);
      tiling.native_16bit_gemm = kernel == 1;
      tiling.host_amx = kernel == 3;
      tiling.host_avx512 = kernel == 4;
      options.tiling = tiling;
      check_16bit<ExecSpace, Scalar>(p, options);
    }
}

} // namespace

using StorageTypes = std::tuple<bfloat16_t, float16_t>;

TEMPLATE_LIST_TEST_CASE("16-bit storage: the standard problems match the float64 reference",
                        "[half][attention]", StorageTypes) {
  for (const Problem &p : standard_problems())
    check_problem<Kokkos::DefaultHostExecutionSpace, TestType>(p);
}

TEMPLATE_LIST_TEST_CASE("16-bit storage: random shapes and patterns", "[half][attention]",
                        StorageTypes) {
  std::mt19937_64 rng(20261201);
  for (int trial = 0; trial < 20; ++trial)
    check_problem<Kokkos::DefaultHostExecutionSpace, TestType>(random_problem(rng, 200));
}

TEMPLATE_LIST_TEST_CASE("16-bit storage on every backend", "[half][attention][backend]",
                        ExecSpaces) {
  const Problem p = standard_problems()[3]; // dilated causal head_groups MQA
  check_16bit<TestType, bfloat16_t>(rounded_to<bfloat16_t>(p), {});
  check_16bit<TestType, float16_t>(rounded_to<float16_t>(p), {});
}

TEMPLATE_LIST_TEST_CASE("16-bit storage: the backward matches the float64 gradients",
                        "[half][backward]", StorageTypes) {
  using Scalar = TestType;
  const double tol = std::is_same_v<Scalar, bfloat16_t> ? 2e-2 : 3e-3;
  std::mt19937_64 rng(7);
  for (const Problem &raw : standard_problems()) {
    const Problem p = rounded_to<Scalar>(raw);
    INFO(p.describe());
    std::vector<double> dout = random_dout(rng, std::size_t(p.B) * p.N * p.H * p.D);
    for (double &e : dout) e = double(float(Scalar(e)));
    const Gradients ref =
        reference_gradients(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v, dout);
    // The host's widened float sweep (the default with CBLAS) and the
    // portable 16-bit kernels.
    for (int members : {1, 3})
      for (bool portable : {false, true}) {
        INFO("members " << members << (portable ? " portable" : ""));
        RingOptions options;
        options.members = members;
        if (portable) options.tiling = small_portable_tiles();
        const Gradients got =
            run_api_backward<Kokkos::DefaultHostExecutionSpace, Scalar>(p, dout, options);
        auto scale_of = [](const std::vector<double> &g) {
          double m = 1;
          for (double x : g) m = std::max(m, std::abs(x));
          return m;
        };
        CHECK(max_abs_error(got.dq, ref.dq) <= tol * scale_of(ref.dq));
        CHECK(max_abs_error(got.dk, ref.dk) <= tol * scale_of(ref.dk));
        CHECK(max_abs_error(got.dv, ref.dv) <= tol * scale_of(ref.dv));
      }
  }
}

TEMPLATE_LIST_TEST_CASE("16-bit storage: a member whose own block is its only one runs in chunks",
                        "[half][attention]", StorageTypes) {
  // Segments dividing the share: the members of contiguous rings of 1 and 2
  // receive nothing and keep their float running O a chunk of rows at a time
  // (running_o_chunk_rows: 4,096 rows for one batch entry of eight heads,
  // so two chunks at N = 8,192 with one member); zigzag members
  // receive, and keep it whole. head_groups leaves rows of some heads that
  // see no key (O = 0).
  using Exec = Kokkos::DefaultHostExecutionSpace;
  std::mt19937_64 rng(20261202);
  for (Mixing mixing : {Mixing::mixture, Mixing::head_groups})
    for (bool causal : {false, true}) {
      const Problem p = rounded_to<TestType>(
          ProblemShape{8192, true, causal, mixing, {256, 512}, {1, 2}, 8, 2, 16}.problem(rng));
      INFO(p.describe());
      const Reference ref =
          reference_attention(p.literal(), p.B, p.D, p.effective_scale(), p.q, p.k, p.v);
      for (PartitionKind kind : {PartitionKind::contiguous, PartitionKind::zigzag})
        for (int members : {1, 2}) {
          INFO("members " << members << " zigzag " << (kind == PartitionKind::zigzag));
          RingOptions options;
          options.members = members;
          options.partition = kind;
          const Output out = run_api<Exec, TestType>(p, options);
          CHECK(max_abs_error(out.o, ref.o) <= o_tolerance<TestType>);
          CHECK(max_abs_error(out.lse, ref.lse) <= lse_tolerance);
        }
    }
}
