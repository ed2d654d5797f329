// Tile-GEMM probe: the two GEMMs of a flash-attention sweep and nothing else
// (S = Q K^T, then O += S V, per QT x KT tile; no softmax), for every GEMM
// provider given, in one run, beside a large square sgemm (2048^3) from the
// same provider (the core's peak). This is the ceiling the host block kernel
// can reach with that provider; the README's provider table comes from it.
//
//   OMP_NUM_THREADS=1 build/perf_tests/ringattn_tile_gemm_probe [--repeats R] [--n N]
//       [--tiles QT,KT] [--provider NAME] [NAME=LIBRARY ...]
//
// Providers are CBLAS libraries loaded with dlopen (so all of them run in one
// process, interleaved round by round): by default the OpenBLAS and MKL
// libraries CMake found. MKL is put
// on its sequential layer, OpenBLAS on one thread; with OMP_NUM_THREADS=T the
// query tiles are split over T OpenMP threads, one GEMM thread each (as the
// block kernel does). MKL's JIT (mkl_jit_create_sgemm) and libxsmm's JIT are
// timed too where present; each row says when a provider cannot do a shape.
#include <dlfcn.h>
#include <omp.h>

#ifdef RINGATTN_PROBE_LIBXSMM
#include <libxsmm.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// CBLAS enum values (cblas.h and mkl_cblas.h agree)
constexpr int RowMajor = 101, NoTrans = 111, Trans = 112;
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
// MKL JIT: a kernel for one fixed shape, called as kernel(jitter, a, b, c)
using JitKernel = void (*)(void *, const float *, const float *, float *);
using JitCreate = int (*)(void **, int, int, int, long long, long long, long long, float, long long,
                          long long, float, long long);
using JitGet = JitKernel (*)(const void *);

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Shape {
  int N, D, QT, KT;
};

struct Data {
  std::vector<float> q, k, v, o;
  explicit Data(const Shape &s) : q(std::size_t(s.N) * s.D), k(q.size()), v(q.size()), o(q.size()) {
    unsigned x = 12345;
    for (auto *a : {&q, &k, &v})
      for (float &e : *a) {
        x = x * 1664525u + 1013904223u;
        e = float(x >> 8) / float(1 << 24) - 0.5f;
      }
  }
};

/// Median seconds of `repeats` sweeps (after one warm-up) of `tile`, called
/// for every (query tile, key tile) with per-thread S and accumulator tiles.
template <class Tile>
double sweep(const Shape &sh, int repeats, Tile &&tile) {
  const int threads = omp_get_max_threads();
  std::vector<std::vector<float>> s(threads, std::vector<float>(std::size_t(sh.QT) * sh.KT));
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {
    const double t0 = now();
#pragma omp parallel for schedule(dynamic)
    for (int q0 = 0; q0 < sh.N; q0 += sh.QT) {
      float *const st = s[omp_get_thread_num()].data();
      for (int k0 = 0; k0 < sh.N; k0 += sh.KT) tile(q0, k0, st);
    }
    if (r > 0) times.push_back(now() - t0);
  }
  return median(times);
}

struct Provider {
  std::string name, path;
  void *handle = nullptr;
  SgemmFn sgemm = nullptr;
};

bool load(Provider &p) {
  p.handle = dlopen(p.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p.handle) {
    std::printf("| %s | cannot load %s: %s |\n", p.name.c_str(), p.path.c_str(), dlerror());
    return false;
  }
  p.sgemm = reinterpret_cast<SgemmFn>(dlsym(p.handle, "cblas_sgemm"));
  if (!p.sgemm) {
    std::printf("| %s | %s has no cblas_sgemm |\n", p.name.c_str(), p.path.c_str());
    return false;
  }
  // one GEMM thread per OpenMP thread
  if (auto layer = reinterpret_cast<int (*)(int)>(dlsym(p.handle, "MKL_Set_Threading_Layer")))
    layer(1); // MKL_THREADING_SEQUENTIAL
  if (auto set = reinterpret_cast<void (*)(int)>(dlsym(p.handle, "openblas_set_num_threads")))
    set(1);
  return true;
}

double peak_gflops(const Provider &p, int repeats) {
  const int n = 2048, threads = omp_get_max_threads();
  std::vector<float> a(std::size_t(n) * n, 0.5f), b(a.size(), 0.25f), c(a.size() * threads);
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {
    const double t0 = now();
    // each thread its own 2048^3 product: the peak of every core at once
#pragma omp parallel
    p.sgemm(RowMajor, NoTrans, NoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
            c.data() + std::size_t(omp_get_thread_num()) * n * n, n);
    if (r > 0) times.push_back(now() - t0);
  }
  return 2.0 * double(n) * n * n * threads / median(times) * 1e-9;
}

double tile_gflops(const Provider &p, const Shape &sh, Data &d, int repeats) {
  const int D = sh.D, QT = sh.QT, KT = sh.KT;
  const double t = sweep(sh, repeats, [&](int q0, int k0, float *s) {
    p.sgemm(RowMajor, NoTrans, Trans, QT, KT, D, 0.125f, &d.q[std::size_t(q0) * D], D,
            &d.k[std::size_t(k0) * D], D, 0.0f, s, KT);
    p.sgemm(RowMajor, NoTrans, NoTrans, QT, D, KT, 1.0f, s, KT, &d.v[std::size_t(k0) * D], D, 1.0f,
            &d.o[std::size_t(q0) * D], D);
  });
  return 4.0 * double(sh.N) * sh.N * D / t * 1e-9;
}

/// MKL's JIT for the two fixed tile shapes; 0 when MKL declines (MKL_NO_JIT).
double mkl_jit_gflops(const Provider &p, const Shape &sh, Data &d, int repeats) {
  auto create = reinterpret_cast<JitCreate>(dlsym(p.handle, "mkl_cblas_jit_create_sgemm"));
  auto get = reinterpret_cast<JitGet>(dlsym(p.handle, "mkl_jit_get_sgemm_ptr"));
  auto destroy = reinterpret_cast<int (*)(void *)>(dlsym(p.handle, "mkl_jit_destroy"));
  if (!create || !get || !destroy) return -1;
  const int D = sh.D, QT = sh.QT, KT = sh.KT;
  void *j1 = nullptr, *j2 = nullptr;
  const int st1 = create(&j1, RowMajor, NoTrans, Trans, QT, KT, D, 0.125f, D, D, 0.0f, KT);
  const int st2 = create(&j2, RowMajor, NoTrans, NoTrans, QT, D, KT, 1.0f, KT, D, 1.0f, D);
  double g = 0;
  if (st1 == 0 && st2 == 0) { // MKL_JIT_SUCCESS; 1 = MKL_NO_JIT (falls back to plain gemm)
    const JitKernel k1 = get(j1), k2 = get(j2);
    const double t = sweep(sh, repeats, [&](int q0, int k0, float *s) {
      k1(j1, &d.q[std::size_t(q0) * D], &d.k[std::size_t(k0) * D], s);
      k2(j2, s, &d.v[std::size_t(k0) * D], &d.o[std::size_t(q0) * D]);
    });
    g = 4.0 * double(sh.N) * sh.N * D / t * 1e-9;
  }
  if (j1) destroy(j1);
  if (j2) destroy(j2);
  return g;
}

/// MKL's packed API with every K and V tile packed once before the sweep
/// (what reusing packed K^T / V tiles across query tiles could reach at
/// most; the packing itself is not timed); 0 without the API.
double mkl_packed_gflops(const Provider &p, const Shape &sh, Data &d, int repeats) {
  using PackSize = std::size_t (*)(int, int, int, int);
  using Pack = void (*)(int, int, int, int, int, int, float, const float *, int, float *);
  using Compute = void (*)(int, int, int, int, int, int, const float *, int, const float *, int,
                           float, float *, int);
  auto size = reinterpret_cast<PackSize>(dlsym(p.handle, "cblas_sgemm_pack_get_size"));
  auto pack = reinterpret_cast<Pack>(dlsym(p.handle, "cblas_sgemm_pack"));
  auto compute = reinterpret_cast<Compute>(dlsym(p.handle, "cblas_sgemm_compute"));
  if (!size || !pack || !compute) return 0;
  constexpr int Packed = 151, BMatrix = 162;
  const int D = sh.D, QT = sh.QT, KT = sh.KT, tiles = sh.N / KT;
  const std::size_t kb = size(BMatrix, QT, KT, D), vb = size(BMatrix, QT, D, KT);
  std::vector<float> kp(kb / sizeof(float) * tiles + 16), vp(vb / sizeof(float) * tiles + 16);
  for (int t = 0; t < tiles; ++t) {
    pack(RowMajor, BMatrix, Trans, QT, KT, D, 0.125f, &d.k[std::size_t(t) * KT * D], D,
         kp.data() + kb / sizeof(float) * t);
    pack(RowMajor, BMatrix, NoTrans, QT, D, KT, 1.0f, &d.v[std::size_t(t) * KT * D], D,
         vp.data() + vb / sizeof(float) * t);
  }
  const double t = sweep(sh, repeats, [&](int q0, int k0, float *s) {
    const int tile = k0 / KT;
    compute(RowMajor, NoTrans, Packed, QT, KT, D, &d.q[std::size_t(q0) * D], D,
            kp.data() + kb / sizeof(float) * tile, KT, 0.0f, s, KT);
    compute(RowMajor, NoTrans, Packed, QT, D, KT, s, KT, vp.data() + vb / sizeof(float) * tile, D,
            1.0f, &d.o[std::size_t(q0) * D], D);
  });
  return 4.0 * double(sh.N) * sh.N * D / t * 1e-9;
}

#ifdef RINGATTN_PROBE_LIBXSMM
/// libxsmm (column-major): S^T = K Q^T is K^T-transposed times Q, and
/// O^T += V^T S^T is plain; 0 when libxsmm has no kernel for a shape.
double libxsmm_gflops(const Shape &sh, Data &d, int repeats) {
  const int D = sh.D, QT = sh.QT, KT = sh.KT;
  const float one = 1, zero = 0, sc = 0.125f;
  const int ta = LIBXSMM_GEMM_FLAG_TRANS_A, nn = LIBXSMM_GEMM_FLAG_NONE;
  const libxsmm_blasint ld_d = D, ld_kt = KT;
  const libxsmm_smmfunction f1 =
      libxsmm_smmdispatch(KT, QT, D, &ld_d, &ld_d, &ld_kt, &sc, &zero, &ta, nullptr);
  const libxsmm_smmfunction f2 =
      libxsmm_smmdispatch(D, QT, KT, &ld_d, &ld_kt, &ld_d, &one, &one, &nn, nullptr);
  if (!f1 || !f2) return 0;
  const double t = sweep(sh, repeats, [&](int q0, int k0, float *s) {
    f1(&d.k[std::size_t(k0) * D], &d.q[std::size_t(q0) * D], s);
    f2(&d.v[std::size_t(k0) * D], s, &d.o[std::size_t(q0) * D]);
  });
  return 4.0 * double(sh.N) * sh.N * D / t * 1e-9;
}
#endif

} // namespace

int main(int argc, char *argv[]) {
  int repeats = 10, N = 4096, QT = 128, KT = 512;
  std::string only; // --provider NAME: time only that one
  std::vector<Provider> providers;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--repeats" && a + 1 < argc)
      repeats = std::atoi(argv[++a]);
    else if (arg == "--n" && a + 1 < argc)
      N = std::atoi(argv[++a]);
    else if (arg == "--tiles" && a + 1 < argc)
      std::sscanf(argv[++a], "%d,%d", &QT, &KT);
    else if (arg == "--provider" && a + 1 < argc)
      only = argv[++a];
    else if (arg.find('=') != std::string::npos)
      providers.push_back({arg.substr(0, arg.find('=')), arg.substr(arg.find('=') + 1)});
    else {
      std::fprintf(stderr,
                   "usage: %s [--repeats R] [--n N] [--tiles QT,KT] [--provider NAME] "
                   "[NAME=LIBRARY ...]\n",
                   argv[0]);
      return 2;
    }
  }
  if (repeats < 1 || N < 1 || QT < 1 || KT < 1 || N % QT || N % KT) {
    std::fprintf(stderr, "need repeats >= 1 and N a multiple of both tiles\n");
    return 2;
  }
  if (providers.empty()) {
#ifdef RINGATTN_PROBE_OPENBLAS
    providers.push_back({"OpenBLAS", RINGATTN_PROBE_OPENBLAS});
#endif
#ifdef RINGATTN_PROBE_MKL
    providers.push_back({"MKL", RINGATTN_PROBE_MKL});
#endif
  }
  std::printf("threads=%d N=%d tiles %d x %d, median of %d\n\n", omp_get_max_threads(), N, QT, KT,
              repeats);
  std::printf("| provider | tile loop D 64 GFLOP/s | tile loop D 128 GFLOP/s | sgemm 2048^3 "
              "GFLOP/s | D 64 / peak | D 128 / peak |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  Data d64({N, 64, QT, KT}), d128({N, 128, QT, KT});
  std::vector<Provider *> loaded;
  for (Provider &p : providers)
    if ((only.empty() || p.name == only) && load(p)) loaded.push_back(&p);
  // Rounds interleave the providers (one timed sweep of each per round), so
  // load that comes and goes on a shared machine hits all of them alike.
  std::vector<std::vector<double>> peak(loaded.size()), g64(loaded.size()), g128(loaded.size());
  for (int r = 0; r < repeats; ++r)
    for (std::size_t i = 0; i < loaded.size(); ++i) {
      peak[i].push_back(peak_gflops(*loaded[i], 1));
      g64[i].push_back(tile_gflops(*loaded[i], {N, 64, QT, KT}, d64, 1));
      g128[i].push_back(tile_gflops(*loaded[i], {N, 128, QT, KT}, d128, 1));
    }
  for (std::size_t i = 0; i < loaded.size(); ++i) {
    const Provider &p = *loaded[i];
    const double pk = median(peak[i]), a = median(g64[i]), b = median(g128[i]);
    std::printf("| %s | %.1f | %.1f | %.1f | %.2f | %.2f |\n", p.name.c_str(), a, b, pk, a / pk,
                b / pk);
  }
  for (Provider *p : loaded) {
    const double k64 = mkl_packed_gflops(*p, {N, 64, QT, KT}, d64, repeats);
    if (k64 > 0) {
      const double k128 = mkl_packed_gflops(*p, {N, 128, QT, KT}, d128, repeats);
      std::printf("| %s, K and V tiles packed beforehand (cblas_sgemm_pack, untimed) | %.1f | "
                  "%.1f | - | - | - |\n",
                  p->name.c_str(), k64, k128);
    }
    const double j64 = mkl_jit_gflops(*p, {N, 64, QT, KT}, d64, repeats);
    if (j64 >= 0) {
      const double j128 = mkl_jit_gflops(*p, {N, 128, QT, KT}, d128, repeats);
      const auto cell = [](double g) {
        return g > 0 ? std::to_string(g).substr(0, 5) : std::string("no JIT");
      };
      std::printf("| %s JIT (mkl_jit_create_sgemm) | %s | %s | - | - | - |\n", p->name.c_str(),
                  cell(j64).c_str(), cell(j128).c_str());
    }
  }
#ifdef RINGATTN_PROBE_LIBXSMM
  libxsmm_init();
  const double x64 = libxsmm_gflops({N, 64, QT, KT}, d64, repeats);
  const double x128 = libxsmm_gflops({N, 128, QT, KT}, d128, repeats);
  const auto cell = [](double g) {
    return g > 0 ? std::to_string(g).substr(0, 5) : std::string("no kernel");
  };
  std::printf("| libxsmm %d.%d (smmdispatch JIT) | %s | %s | - | - | - |\n", LIBXSMM_VERSION_MAJOR,
              LIBXSMM_VERSION_MINOR, cell(x64).c_str(), cell(x128).c_str());
  libxsmm_finalize();
#endif
  return 0;
}
