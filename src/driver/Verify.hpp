#ifndef RINGATTN_DRIVER_VERIFY_HPP
#define RINGATTN_DRIVER_VERIFY_HPP

// Built-in verification (docs/SPEC.md section 5 `verify`): sampled query rows recomputed in
// float64 straight from docs/SPEC.md section 2 (streaming over the keys each head sees, from
// the input source itself), compared with what the ring produced.

#include "InputData.hpp"

#include <pattern/RingAttn_Pattern.hpp>

#include <cstdint>
#include <vector>

namespace ringattn::driver {

struct SampledRow {
  std::int64_t b = 0;
  std::int64_t t = 0;
};

/// min(verify.rows, B*N) distinct rows, the same on every rank and for every
/// P: the first and last position and a seeded spread in between.
std::vector<SampledRow> sample_rows(const RunConfig &cfg);

/// O [H][D] and LSE [H] of one query position.
struct RowValues {
  std::vector<double> o;
  std::vector<double> lse;
};

RowValues reference_row(const InputData &data, const Pattern &pattern, double scale,
                        const SampledRow &row);

struct VerifyErrors {
  std::int64_t rows = 0;
  double max_abs_error_o = 0;
  double max_abs_error_lse = 0;
  bool nonfinite = false; ///< NaN, or an infinity where the reference has none

  void add(const RowValues &got, const RowValues &ref);
  void merge(const VerifyErrors &other);
  /// O within `tolerance`, LSE within lse_tolerance(dtype, tolerance).
  bool passed(DType dtype, double tolerance) const {
    return !nonfinite && max_abs_error_o <= tolerance &&
           max_abs_error_lse <= lse_tolerance(dtype, tolerance);
  }
};

} // namespace ringattn::driver

#endif
