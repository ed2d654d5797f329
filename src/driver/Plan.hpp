#ifndef RINGATTN_DRIVER_PLAN_HPP
#define RINGATTN_DRIVER_PLAN_HPP

// `ringattn plan` (docs/SPEC.md section 4): a printer of the library's ring model
// (model/RingAttn_RingModel.hpp): memory per ring member, communication
// volume, FLOPs, and the longest sequence that fits a memory size per member.

#include <api/RingAttn_Options.hpp>
#include <model/RingAttn_RingModel.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>

namespace ringattn::driver {

struct RunConfig;

/// The deck's problem, with the given tiling and threads.
ModelProblem make_model_problem(const RunConfig &cfg, const Tiling &tiling, int threads);

/// What `ringattn plan` prints for a deck, to `out` (errors to `err`).
/// Returns 0, or 2 for a deck beyond what the plan evaluates.
struct PlanOptions {
  std::uint64_t memory_bytes = std::uint64_t(16) << 30; ///< --memory, default 16 GiB
  bool memory_given = false;
  int world_size = 1; ///< ranks of this launch: the ring size of mode mpi without ring.size
  Tiling tiling;      ///< the kernel's tiling (default_tiling of the execution space)
  int threads = 1;    ///< teams in flight (host threads, or GPU teams)
  std::string exec_space = "host";
};
inline constexpr int plan_max_members = 65536;
inline constexpr std::int64_t plan_max_entries = 65536;
int write_plan(const RunConfig &cfg, const PlanOptions &options, std::ostream &out,
               std::ostream &err);

/// "1.50 GiB" (powers of 1024), "512 B".
std::string human_bytes(long double bytes);
/// "1.23 TFLOP"-style with powers of 1000 and the given unit.
std::string human_count(long double value, const std::string &unit);

} // namespace ringattn::driver

#endif
