#ifndef RINGATTN_DRIVER_OUTPUTFILES_HPP
#define RINGATTN_DRIVER_OUTPUTFILES_HPP

#include "AtomicFile.hpp"
#include "Deck.hpp"
#include "DriverComm.hpp"
#include "Npy.hpp"

#include <pattern/RingAttn_Partition.hpp>

#include <cstdint>
#include <optional>

namespace ringattn::driver {

/// O and LSE files (docs/SPEC.md section 5): created under temporary names by rank 0, written
/// by every member at its own rows, renamed into place only when all is done. Their dtype is
/// output_file_dtype(problem.dtype): float32 for 16-bit storage.
class OutputFiles {
public:
  OutputFiles(const RunConfig &cfg, const DriverComm &comm) : cfg_(cfg), comm_(comm) {}

  /// Collective. Returns a nonzero exit code (agreed on every rank) on failure.
  int open();

  bool any() const { return o_.has_value() || lse_.has_value(); }

  /// Member p's rows: o_host [B, n, H, D], lse_host [B, H, n] in local order.
  template <class Scalar, class Lse>
  void write_member(const Partition &part, int p, const Scalar *o_host, const Lse *lse_host) {
    const std::int64_t B = cfg_.problem.batch, N = cfg_.problem.seq_len;
    const std::int64_t H = cfg_.problem.heads, D = cfg_.problem.head_dim;
    const std::int64_t n = part.local_size(p);
    for (std::int64_t b = 0; b < B; ++b)
      for (int r = 0; r < part.num_ranges(); ++r) {
        const Range g = part.range(p, r);
        const std::int64_t l = part.range_local_begin(p, r);
        if (g.size() == 0) continue;
        if (o_)
          o_->write((b * N + g.begin) * H * D, g.size() * H * D, o_host + (b * n + l) * H * D);
        if (lse_)
          for (std::int64_t h = 0; h < H; ++h)
            lse_->write((b * H + h) * N + g.begin, g.size(), lse_host + (b * H + h) * n + l);
      }
  }

  /// Collective: everyone closes, then rank 0 renames the files into place.
  void commit();

private:
  const RunConfig &cfg_;
  const DriverComm &comm_;
  std::optional<AtomicFile> o_file_, lse_file_;
  std::optional<NpyWriter> o_, lse_;
};

} // namespace ringattn::driver

#endif
