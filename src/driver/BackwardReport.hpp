#ifndef RINGATTN_DRIVER_BACKWARDREPORT_HPP
#define RINGATTN_DRIVER_BACKWARDREPORT_HPP

// What `ringattn run` measured for the backward pass (docs/SPEC.md section 7), when
// attention.backward is true: timing, work, communication and the
// verification of sampled dQ rows and dK/dV key rows.

#include <cstdint>
#include <vector>

namespace ringattn::driver {

struct BackwardReport {
  std::vector<double> repeat_seconds; ///< per timed repeat (the slowest rank's)
  std::int64_t key_pairs = 0;
  double flops = 0; ///< 10 D per kept pair: QK^T again, dP, dV, dQ, dK
  std::vector<std::int64_t> bytes_sent_per_member;
  std::vector<std::int64_t> model_bytes_sent_per_member;
  std::int64_t hops_made = 0, hops_skipped = 0;
  // memory: the peak resident size while the backward ran (the largest
  // rank's), the process before any data, and the model of what the
  // backward holds (model_backward; under MPI with the member's forward)
  std::int64_t peak_bytes = 0, baseline_bytes = 0, model_bytes = 0;
  // verification
  bool verified = false;
  std::int64_t dq_rows = 0;  ///< sampled query rows whose dQ was checked
  std::int64_t dkv_rows = 0; ///< sampled key rows whose dK, dV were checked
  double max_abs_error_dq = 0, max_abs_error_dk = 0, max_abs_error_dv = 0;
  bool nonfinite = false;

  bool passed(double tolerance) const {
    return !verified || (!nonfinite && max_abs_error_dq <= tolerance &&
                         max_abs_error_dk <= tolerance && max_abs_error_dv <= tolerance);
  }
  double median_seconds() const;
};

} // namespace ringattn::driver

#endif
