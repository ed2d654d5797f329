#ifndef RINGATTN_RINGSTATS_HPP
#define RINGATTN_RINGSTATS_HPP

#include <cstdint>
#include <functional>
#include <vector>

namespace ringattn {

/// What a ring pass did, per member: bytes of K/V blocks sent (counted at the
/// send), seconds spent in the block kernel, hops made and skipped.
struct RingStats {
  std::vector<std::int64_t> bytes_sent;
  std::vector<double> compute_seconds;
  std::int64_t hops_made = 0;
  std::int64_t hops_skipped = 0;

  void resize(int members) {
    bytes_sent.assign(members, 0);
    compute_seconds.assign(members, 0.0);
  }
};

/// Progress of a pass: `member` of `members` (simulated ring; the rank under
/// MPI) has finished `step` of `steps` ring steps.
struct RingProgress {
  int member = 0;
  int members = 1;
  int step = 0;
  int steps = 1;
};
using ProgressCallback = std::function<void(const RingProgress &)>;

} // namespace ringattn

#endif
