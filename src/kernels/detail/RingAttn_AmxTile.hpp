#ifndef RINGATTN_AMXTILE_HPP
#define RINGATTN_AMXTILE_HPP

// Intel AMX tile products for the host fast path in bfloat16 (docs/DESIGN.md,
// "host kernel"): S = Q K^T and O += P V on the tile unit (TDPBF16PS:
// bfloat16 pairs, float sums), the softmax between them in AVX-512. Compiled
// only where the target has AMX-TILE, AMX-BF16 and AVX512-BF16
// (-march=native on such a CPU, or -march=sapphirerapids and later), and
// used only where Linux grants the process the tile state (amx_permitted).
//
// Operand layouts (Intel SDM, "Intel AMX"): a tile is at most 16 rows of 64
// bytes. TDPBF16PS C[16 x 16 float] += A[16 x 32 bf16] B, with B in pairs:
// row p of B holds, for each of 16 columns n, the two bfloat16 values of
// rows 2p and 2p + 1 of the mathematical B (B[2p][n], B[2p + 1][n]). So
//   S = Q K^T: A is Q (rows as stored), B row p column j is K[j][2p .. 2p+1],
//     a transpose of 32-bit pairs of K (pack_keys);
//   O += P V: A is P (row-major, written by the softmax), B row p column d is
//     (V[2p][d], V[2p + 1][d]), two rows of V interleaved (pack_values).
// All operands are padded with zeros to whole tiles: 32 rows or keys, head
// dims to a multiple of 32.

#include <core/RingAttn_Half.hpp>
#include <kernels/detail/RingAttn_HostSoftmax.hpp>

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__AVX512BF16__) &&                   \
    defined(__AVX512F__) && defined(__AVX512BW__) && defined(__linux__)
#define RINGATTN_HAVE_HOST_AMX
#endif

#ifdef RINGATTN_HAVE_HOST_AMX
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <cstddef>
#include <cstdint>

namespace ringattn::Details {

/// Tile edge of the AMX path: rows of queries, keys and head dims are padded
/// to multiples of it (two 16-row tiles; 32 bfloat16 per 64-byte tile row).
inline constexpr int amx_block = 32;

inline constexpr int amx_round_up(int n) { return (n + amx_block - 1) / amx_block * amx_block; }

/// Whether this build has the AMX path and the OS lets this process use it
/// (Linux hands out the tile state on request, once per process:
/// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)).
inline bool amx_permitted() {
#ifdef RINGATTN_HAVE_HOST_AMX
  static const bool granted = [] {
    constexpr int arch_req_xcomp_perm = 0x1023;
    constexpr int xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
  }();
  return granted;
#else
  return false;
#endif
}

/// Head dims the AMX path takes: even (a key's pairs of dims are 32-bit
/// words) and at most 512 (the tiles live in scratch).
inline bool amx_takes_head_dim(int D) { return D > 0 && D % 2 == 0 && D <= 512; }

#ifdef RINGATTN_HAVE_HOST_AMX

// GCC 12's AVX-512 intrinsics initialise their pass-through operand from
// itself (_mm512_undefined_*), which -Wmaybe-uninitialized reports once
// inlined here; the operand is never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

/// Palette 1 with all eight tiles at 16 rows x 64 bytes: C tiles of 16 x 16
/// float, A tiles of 16 x 32 bfloat16, B tiles of 16 pair rows x 16 columns.
struct alignas(64) AmxTileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

/// Loads the tile configuration on this thread, releases it on scope exit.
class AmxTileScope {
public:
  AmxTileScope() {
    static const AmxTileConfig config{};
    _tile_loadconfig(&config);
  }
  ~AmxTileScope() { _tile_release(); }
  AmxTileScope(const AmxTileScope &) = delete;
  AmxTileScope &operator=(const AmxTileScope &) = delete;
};

/// Q rows (nq of them, `ld` values apart, D each) into a zero-padded
/// [amx_round_up(nq)][Dp] block, Dp = amx_round_up(D): the A operand of S.
inline void amx_pack_queries(const bfloat16_t *q, std::int64_t ld, int nq, int D, int Dp,
                             std::uint16_t *dst) {
  const int rows = amx_round_up(nq);
  for (int i = 0; i < rows; ++i) {
    std::uint16_t *const out = dst + std::size_t(i) * Dp;
    int d = 0;
    if (i < nq) {
      const std::uint16_t *const in = reinterpret_cast<const std::uint16_t *>(q + i * ld);
      for (; d < D; ++d) out[d] = in[d];
    }
    for (; d < Dp; ++d) out[d] = 0;
  }
}

/// Keys (nk rows `ld` values apart, D even) as the B operand of S = Q K^T:
/// for each block of 16 keys and chunk of 32 dims, a 16 x 16 tile of 32-bit
/// pairs, tile row p, column j = K[j][2p .. 2p + 1]; tiles ordered by key
/// block, then dim chunk. Keys past nk (to amx_round_up(nk)) and dims past D
/// are zero. A 16 x 16 transpose of 32-bit words per tile, in registers.
inline void amx_pack_keys(const bfloat16_t *k, std::int64_t ld, int nk, int D, int Dp,
                          std::uint32_t *dst) {
  const int key_blocks = amx_round_up(nk) / 16, chunks = Dp / amx_block;
  const int pairs = D / 2;
  for (int jb = 0; jb < key_blocks; ++jb) {
    for (int c = 0; c < chunks; ++c) {
      // rows[j]: key jb*16 + j's pairs c*16 .. c*16 + 15 (zero past nk or D)
      const int p0 = c * 16;
      const int np = pairs - p0 < 16 ? pairs - p0 : 16;
      const __mmask16 lanes = np <= 0 ? __mmask16(0) : __mmask16((1u << np) - 1u);
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        const int key = jb * 16 + j;
        r[j] = key < nk ? _mm512_maskz_loadu_epi32(
                              lanes, reinterpret_cast<const std::uint32_t *>(k + key * ld) + p0)
                        : _mm512_setzero_si512();
      }
      // 16 x 16 transpose of 32-bit words: 32-bit, 64-bit, then 128-bit
      // lane exchanges (four rounds of 16 shuffles).
      __m512i t[16];
      for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
      }
      for (int j = 0; j < 16; j += 4) {
        r[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
        r[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
        r[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
        r[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
      }
      // r[4a + b], 128-bit lane L: column 4L + b of rows 4a .. 4a + 3. Two
      // rounds of 128-bit lane shuffles gather column 4L + b's four lanes.
      for (int j = 0; j < 4; ++j) {
        t[j] = _mm512_shuffle_i32x4(r[j], r[j + 4], 0x88);
        t[j + 4] = _mm512_shuffle_i32x4(r[j], r[j + 4], 0xDD);
        t[j + 8] = _mm512_shuffle_i32x4(r[j + 8], r[j + 12], 0x88);
        t[j + 12] = _mm512_shuffle_i32x4(r[j + 8], r[j + 12], 0xDD);
      }
      std::uint32_t *const tile = dst + (std::size_t(jb) * chunks + c) * 256;
      for (int j = 0; j < 4; ++j) {
        const __m512i lo = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
        const __m512i hi = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xDD);
        const __m512i lo2 = _mm512_shuffle_i32x4(t[j + 4], t[j + 12], 0x88);
        const __m512i hi2 = _mm512_shuffle_i32x4(t[j + 4], t[j + 12], 0xDD);
        _mm512_storeu_si512(tile + (j + 0) * 16, lo);
        _mm512_storeu_si512(tile + (j + 4) * 16, lo2);
        _mm512_storeu_si512(tile + (j + 8) * 16, hi);
        _mm512_storeu_si512(tile + (j + 12) * 16, hi2);
      }
    }
  }
}

/// Values (nk rows `ld` values apart, D each) as the B operand of O += P V:
/// for each chunk of 32 keys and block of 16 dims, a tile whose row p holds
/// (V[2p][d], V[2p + 1][d]) for d of the block; tiles ordered by key chunk,
/// then dim block. Keys past nk and dims past D are zero.
inline void amx_pack_values(const bfloat16_t *v, std::int64_t ld, int nk, int D, int Dp,
                            std::uint16_t *dst) {
  const int key_chunks = amx_round_up(nk) / amx_block, blocks = Dp / 16;
  // interleave the 16-bit words of two rows: lanes 2d and 2d + 1 of the
  // result are a[d] and b[d] (d < 16), as _mm512_permutex2var_epi16 indices
  alignas(64) static constexpr std::uint16_t interleave[32] = {
      0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
      8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  const __m512i index = _mm512_load_si512(interleave);
  for (int kc = 0; kc < key_chunks; ++kc) {
    for (int db = 0; db < blocks; ++db) {
      const int d0 = db * 16;
      const int nd = D - d0 < 16 ? D - d0 : 16;
      const __mmask32 lanes = nd <= 0 ? __mmask32(0) : __mmask32((1u << nd) - 1u);
      std::uint16_t *const tile = dst + (std::size_t(kc) * blocks + db) * 512;
      for (int p = 0; p < 16; ++p) {
        const int k0 = kc * amx_block + 2 * p;
        const __m512i a =
            k0 < nk ? _mm512_maskz_loadu_epi16(lanes, v + k0 * ld + d0) : _mm512_setzero_si512();
        const __m512i b = k0 + 1 < nk ? _mm512_maskz_loadu_epi16(lanes, v + (k0 + 1) * ld + d0)
                                      : _mm512_setzero_si512();
        _mm512_storeu_si512(tile + p * 32, _mm512_permutex2var_epi16(a, index, b));
      }
    }
  }
}

/// S[32 x 32 j-block] for query rows [i0, i0 + 32) of the packed queries
/// (row stride Dp) against key blocks [2 jb2, 2 jb2 + 2) of the packed
/// keys: s_out rows are `lds` floats apart.
inline void amx_scores_block(const std::uint16_t *qpack, const std::uint32_t *kpack, int Dp, int i0,
                             int jb2, float *s_out, int lds) {
  const int chunks = Dp / amx_block;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const std::uint16_t *const a0 = qpack + std::size_t(i0) * Dp;
  const std::uint16_t *const a1 = a0 + std::size_t(16) * Dp;
  const std::uint32_t *const b0 = kpack + std::size_t(2 * jb2) * chunks * 256;
  const std::uint32_t *const b1 = b0 + std::size_t(chunks) * 256;
  for (int c = 0; c < chunks; ++c) {
    _tile_loadd(4, a0 + c * amx_block, Dp * 2);
    _tile_loadd(5, a1 + c * amx_block, Dp * 2);
    _tile_loadd(6, b0 + c * 256, 64);
    _tile_loadd(7, b1 + c * 256, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, s_out, lds * 4);
  _tile_stored(1, s_out + 16, lds * 4);
  _tile_stored(2, s_out + 16 * lds, lds * 4);
  _tile_stored(3, s_out + 16 * lds + 16, lds * 4);
}

/// acc[32 rows x Dp] += P[32 rows x key_chunks * 32] V for the packed
/// values; P rows are `ldp` bfloat16 apart, acc rows Dp floats apart.
inline void amx_accumulate_block(const std::uint16_t *p, int ldp, const std::uint16_t *vpack,
                                 int key_chunks, int Dp, float *acc) {
  const int blocks = Dp / 16;
  for (int db = 0; db < blocks; db += 2) {
    float *const c0 = acc + db * 16;
    _tile_loadd(0, c0, Dp * 4);
    _tile_loadd(1, c0 + 16, Dp * 4);
    _tile_loadd(2, c0 + 16 * Dp, Dp * 4);
    _tile_loadd(3, c0 + 16 * Dp + 16, Dp * 4);
    for (int kc = 0; kc < key_chunks; ++kc) {
      _tile_loadd(4, p + kc * amx_block, ldp * 2);
      _tile_loadd(5, p + std::size_t(16) * ldp + kc * amx_block, ldp * 2);
      const std::uint16_t *const b = vpack + (std::size_t(kc) * blocks + db) * 512;
      _tile_loadd(6, b, 64);
      _tile_loadd(7, b + 512, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c0, Dp * 4);
    _tile_stored(1, c0 + 16, Dp * 4);
    _tile_stored(2, c0 + 16 * Dp, Dp * 4);
    _tile_stored(3, c0 + 16 * Dp + 16, Dp * 4);
  }
}

/// p[j] = bfloat16(2^(scale2 s[j] - m)) for j < keep, 0 for keep <= j < n
/// (n a multiple of 32); returns the float sum of the weights.
inline float amx_row_weights(const float *s, int keep, int n, float scale2, float m,
                             std::uint16_t *p) {
  return avx512_row_weights(s, keep, n, scale2, m, [p](int j, __m512 w, __mmask16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(p + j), (__m256i)_mm512_cvtneps_pbh(w));
  });
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif // RINGATTN_HAVE_HOST_AMX

} // namespace ringattn::Details

#endif
