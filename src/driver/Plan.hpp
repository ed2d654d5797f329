#ifndef RINGATTN_DRIVER_PLAN_HPP
#define RINGATTN_DRIVER_PLAN_HPP

// `ringattn plan` (docs/SPEC.md section 4): memory per ring member, communication volume,
// FLOPs, and the longest sequence that fits a memory size per member.
//
// The library's model (ring/RingAttn_MemoryModel.hpp) sizes buffers from
// the exact exchange plans, which list one block-kernel task per segment and
// head: O(N / w * H) entries per member, far too many to evaluate inside a
// search over N. The functions here give the same numbers from counts alone:
// a segment that lies whole inside the same ranges of the receiver and the
// sender as its neighbours needs exactly what they need (translation by a
// multiple of w), so only the few segments at range boundaries (and the
// short last one) are planned one by one and the rest are multiplied out.
// Kv heads with the same phase list are counted once, with a multiplicity.
// The cost is thus independent of N; unit_tests/tstPlan.cpp checks every
// count against plan_exchange() and the model against model_member_memory().
//
// Every product saturates at INT64_MAX (`saturated`), so no size overflows.

#include <api/RingAttn_Options.hpp>
#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>
#include <ring/RingAttn_MemoryModel.hpp>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace ringattn::driver {

struct RunConfig;

inline constexpr std::int64_t saturated = INT64_MAX;

/// a * b and a + b for a, b >= 0, saturating at `saturated`.
std::int64_t sat_mul(std::int64_t a, std::int64_t b);
std::int64_t sat_add(std::int64_t a, std::int64_t b);

/// What an exchange (source -> receiver) holds, by counts: the rows of the
/// block the kernels read (per batch entry, all kv heads), the rows of its
/// wire (each (kv head, row) once: what crosses) and, per branch, the
/// block-kernel tasks and work items (tiles of q_tile queries) the receiver
/// runs on it. tasks/items are the largest over branches, as
/// largest_exchange() takes.
struct ExchangeCount {
  std::int64_t rows = 0;
  std::int64_t wire_rows = 0;
  std::int64_t tasks = 0; ///< max over branches of the branch's tasks
  std::int64_t items = 0; ///< max over branches of the branch's work items
  std::int64_t branch_tasks[max_branches] = {};
  std::int64_t branch_items[max_branches] = {};
};

/// (kv head class, phase) entries an ExchangeCounter of `pattern` holds, over
/// all branches: its memory and the cost of counting one segment.
std::int64_t exchange_entries(const Pattern &pattern);

/// The exchange counter of one pattern (precomputes the kv head classes).
class ExchangeCounter {
public:
  explicit ExchangeCounter(const Pattern &pattern);
  /// Counts of plan_exchange(pattern, partition, receiver, source, true)
  /// (block_rows as rows, rows as wire_rows) and make_work_items(., q_tile)
  /// of each branch, in O(1) in N.
  ExchangeCount count(const Partition &partition, int receiver, int source, int q_tile) const;
  const Pattern &pattern() const { return pattern_; }

private:
  struct PhaseHeads {
    std::int64_t phase = 0;
    std::int64_t heads = 0; ///< query heads of the kv head with this offset
  };
  struct KvClass {
    std::int64_t multiplicity = 0; ///< kv heads with this phase list
    std::vector<PhaseHeads> phases;
  };
  struct Acc {
    std::int64_t rows = 0, tasks = 0, items = 0;
  };
  Acc count_segment(const Partition &partition, int receiver, int source, int branch,
                    std::int64_t segment, int q_tile) const;

  /// Kv heads with the same phase lists in every branch have wires of the
  /// same size: one representative each, with a multiplicity.
  struct WireClass {
    int kv_head = 0;
    std::int64_t multiplicity = 0;
  };

  Pattern pattern_;
  std::vector<std::vector<KvClass>> classes_; // [branch]
  std::vector<WireClass> wire_classes_;
  bool reads_rows_once_ = true; ///< every kv head has one (branch, phase): wire == block
};

/// The problem shape a plan evaluates at any sequence length and ring size:
/// the deck's pattern (segment lengths and rates fixed; dense stays dense),
/// batch, head dim, storage bytes, partition, and the kernel's tiling and
/// threads (teams in flight) that size the tiles.
struct PlanProblem {
  Pattern pattern;
  bool dense = true;
  std::int64_t batch = 1;
  std::int64_t head_dim = 1;
  std::int64_t scalar_bytes = 4;
  PartitionKind partition = PartitionKind::contiguous;
  Tiling tiling;
  int threads = 1;

  /// The pattern at sequence length n.
  Pattern pattern_at(std::int64_t n) const;
};

/// The deck's problem, with the given tiling and threads.
PlanProblem make_plan_problem(const RunConfig &cfg, const Tiling &tiling, int threads);

/// One ring's numbers. Members are evaluated all (exact) up to
/// `exact_member_limit`, else a sample (first, last, evenly spaced).
struct RingAnalysis {
  int members = 1;
  std::int64_t seq_len = 0;
  bool sampled = false;
  std::vector<int> evaluated;            ///< the members below are of these
  std::vector<MemberMemoryModel> memory; ///< mode mpi, per evaluated member
  std::vector<ExchangeExtent> extents;   ///< largest exchanges, per evaluated member
  MemberMemoryModel process;             ///< mode simulated: the whole process
  ExchangeExtent process_extent;
  std::int64_t process_rows = 0;         ///< n of the process: its largest member's rows
  std::vector<std::int64_t> sent_rows;   ///< rows member p sends, summed over destinations
  std::vector<std::int64_t> sent_bytes;  ///< the same in bytes (2 * B * D * scalar per row)
  std::vector<std::int64_t> dense_bytes; ///< what a dense ring would send: (P-1)*B*n_p*Hkv*D*2*s
  std::int64_t hops_made = 0,
               hops_skipped = 0;  ///< blocks sent / empty (sends of the evaluated members)
  std::vector<long double> pairs; ///< (query, key) pairs of the queries a member owns, per batch

  int largest_member() const; ///< index into `evaluated` of the largest mpi total
  int smallest_member() const;
};

RingAnalysis analyse_ring(const PlanProblem &problem, std::int64_t seq_len, int members,
                          int exact_member_limit = 1024);

/// Model of member p (mpi) or of the simulated process (mpi false): the
/// numbers model_member_memory() gives, from counts.
MemberMemoryModel model_member(const PlanProblem &problem, const Partition &partition, int p,
                               bool mpi);
/// Sum of the model's buffers, saturating.
std::int64_t model_total(const MemberMemoryModel &m);
/// Largest mpi member total at sequence length n on `members` members.
std::int64_t max_member_total(const PlanProblem &problem, std::int64_t n, int members);

/// (query, key) pairs over the positions [begin, end), all heads, one batch
/// entry: the sum of pattern.pairs_for_query(t, h). O(branches * offsets).
long double pairs_in_range(const Pattern &pattern, std::int64_t begin, std::int64_t end);

/// The longest sequence (a multiple of `step`) whose largest mpi member
/// fits `memory_bytes`: a doubling search, then bisection, so that
/// max_member_total(seq_len) <= memory < max_member_total(seq_len + step)
/// (when the model grows with N). seq_len 0: not even `step` tokens fit;
/// `capped`: `cap` tokens fit (the search stops there).
struct Fit {
  int members = 1;
  std::int64_t seq_len = 0;
  std::int64_t bytes = 0; ///< largest member total at seq_len
  bool capped = false;
  int evaluations = 0;
};
inline constexpr std::int64_t default_fit_step = 64;
inline constexpr std::int64_t default_fit_cap = std::int64_t(1) << 48;
Fit longest_fitting_sequence(const PlanProblem &problem, int members, std::uint64_t memory_bytes,
                             std::int64_t step = default_fit_step,
                             std::int64_t cap = default_fit_cap);

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
