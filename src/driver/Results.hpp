#ifndef RINGATTN_DRIVER_RESULTS_HPP
#define RINGATTN_DRIVER_RESULTS_HPP

// The results file (docs/SPEC.md section 6) and the sweep CSV: what a run measured, beside
// the models (memory, communication) it is compared with.

#include "BackwardReport.hpp"
#include "Deck.hpp"
#include "Verify.hpp"

#include <ring/RingAttn_MemoryModel.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ringattn::driver {

struct RunReport {
  RunConfig config;
  std::vector<double> repeat_seconds; ///< per timed repeat (the slowest rank's)
  std::int64_t key_pairs = 0;
  double flops = 0;
  // memory
  std::vector<std::int64_t> peak_bytes_per_member;
  std::string peak_scope;          ///< "rank" (mpi) or "process" (simulated)
  std::int64_t baseline_bytes = 0; ///< resident before any data: Kokkos, MPI, the program
  MemberMemoryModel model;         ///< the largest member's
  // communication
  std::vector<std::int64_t> bytes_sent_per_member;
  std::vector<std::int64_t> model_bytes_sent_per_member;
  std::int64_t hops_made = 0, hops_skipped = 0;
  // load balance (block-kernel seconds per member, last repeat)
  std::vector<double> compute_seconds_per_member;
  // verification
  VerifyErrors verify;
  bool verified = false;
  // the backward pass, when attention.backward is true
  std::optional<BackwardReport> backward;

  bool passed() const {
    return (!verified || verify.passed(config.problem.dtype, config.verify.tolerance)) &&
           (!backward || backward->passed(config.verify.tolerance));
  }
  double median_seconds() const;
};

/// The whole results file: one run, or a sweep's points.
std::string results_yaml(const RunConfig &deck, const std::vector<RunReport> &reports);

/// One CSV header and one row per sweep point.
std::string csv_header(const RunConfig &deck);
std::string csv_row(const RunReport &report);

} // namespace ringattn::driver

#endif
