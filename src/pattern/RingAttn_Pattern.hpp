#ifndef RINGATTN_PATTERN_HPP
#define RINGATTN_PATTERN_HPP

// Which (query, key) pairs a head sees: the index math of docs/SPEC.md section 2.
// Pure functions of integers, host and device callable, no allocation.

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn {

enum class Mixing { mixture, head_groups };

/// The most dilation branches a pattern may hold (LongNet uses 3 to 5).
inline constexpr int max_branches = 64;

/// An attention pattern over a sequence of `seq_len` positions.
///
/// Dense attention is the dilated pattern with one branch whose segment is the
/// whole sequence and whose rate is 1 (every head takes part with offset 0),
/// so every layer below handles the two kinds through one code path.
struct Pattern {
  std::int64_t seq_len = 0;
  int heads = 1;
  int kv_heads = 1;
  bool causal = false;
  Mixing mixing = Mixing::mixture;
  int num_branches = 0;
  std::int64_t segment_length[max_branches] = {};
  std::int64_t dilation_rate[max_branches] = {};

  /// Dense attention (docs/SPEC.md section 2, "Dense").
  static Pattern dense(std::int64_t seq_len, int heads, int kv_heads, bool causal) {
    Pattern p = make_base(seq_len, heads, kv_heads, causal, Mixing::mixture);
    p.num_branches = 1;
    p.segment_length[0] = seq_len > 0 ? seq_len : 1;
    p.dilation_rate[0] = 1;
    return p;
  }

  /// Dilated attention (docs/SPEC.md section 2, "Dilated"): branch i has segment length
  /// segments[i] and dilation rate rates[i], 1 <= r_i <= w_i.
  static Pattern dilated(std::int64_t seq_len, int heads, int kv_heads, bool causal, Mixing mixing,
                         const std::vector<std::int64_t> &segments,
                         const std::vector<std::int64_t> &rates) {
    Pattern p = make_base(seq_len, heads, kv_heads, causal, mixing);
    if (segments.empty() || segments.size() != rates.size())
      throw std::invalid_argument("dilated pattern: need as many dilation rates as segment "
                                  "lengths, and at least one");
    if (segments.size() > static_cast<std::size_t>(max_branches))
      throw std::invalid_argument("dilated pattern: at most " + std::to_string(max_branches) +
                                  " branches");
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (segments[i] < 1)
        throw std::invalid_argument("dilated pattern: segment lengths must be >= 1");
      if (rates[i] < 1 || rates[i] > segments[i])
        throw std::invalid_argument("dilated pattern: dilation rate must satisfy 1 <= r <= w");
      // Stored in a normal form with the same pairs: a segment longer than N
      // is the whole sequence, and a rate beyond max(N, H) changes nothing
      // (every phase and offset is already below it). Keeps all index
      // arithmetic below max(N, H), whatever the deck says.
      const std::int64_t cap = std::max<std::int64_t>(seq_len, heads);
      p.segment_length[i] = std::min(segments[i], seq_len);
      p.dilation_rate[i] = std::min(rates[i], cap);
    }
    p.num_branches = static_cast<int>(segments.size());
    if (mixing == Mixing::head_groups && heads < p.num_branches)
      throw std::invalid_argument("head_groups mixing needs heads >= number of branches");
    return p;
  }

  /// Segment index of position t in branch i.
  KOKKOS_INLINE_FUNCTION std::int64_t segment(std::int64_t t, int i) const {
    return t / segment_length[i];
  }
  KOKKOS_INLINE_FUNCTION std::int64_t segment_begin(std::int64_t s, int i) const {
    return s * segment_length[i];
  }
  /// End of segment s; the last segment of a branch may be shorter (docs/SPEC.md section 2).
  KOKKOS_INLINE_FUNCTION std::int64_t segment_end(std::int64_t s, int i) const {
    const std::int64_t begin = s * segment_length[i];
    return seq_len - begin > segment_length[i] ? begin + segment_length[i] : seq_len;
  }
  KOKKOS_INLINE_FUNCTION std::int64_t num_segments(int i) const {
    return (seq_len - 1) / segment_length[i] + 1;
  }
  /// Phase of t in branch i: its distance from the segment start, modulo r_i.
  KOKKOS_INLINE_FUNCTION std::int64_t phase(std::int64_t t, int i) const {
    return (t - segment(t, i) * segment_length[i]) % dilation_rate[i];
  }

  /// Number of query heads per kv head (GQA/MQA group size).
  KOKKOS_INLINE_FUNCTION int heads_per_kv_head() const { return heads / kv_heads; }
  /// The kv head that query head h reads (docs/SPEC.md section 1).
  KOKKOS_INLINE_FUNCTION int kv_head(int h) const { return h / heads_per_kv_head(); }

  /// head_groups mixing: H heads split into G contiguous groups, the first
  /// H % G groups one head larger (docs/SPEC.md section 2).
  KOKKOS_INLINE_FUNCTION int head_group(int h) const {
    const int base = heads / num_branches;
    const int extra = heads % num_branches;
    const int big = extra * (base + 1);
    return h < big ? h / (base + 1) : extra + (h - big) / base;
  }

  /// The phase offset with which head h takes part in branch i, or -1 when it
  /// does not take part (head_groups: only the group's own branch).
  KOKKOS_INLINE_FUNCTION std::int64_t offset(int h, int i) const {
    if (mixing == Mixing::head_groups) {
      return head_group(h) == i ? static_cast<std::int64_t>(i) % dilation_rate[i] : -1;
    }
    return static_cast<std::int64_t>(h) % dilation_rate[i];
  }

  /// Whether branch i lets query t of head h see key u (docs/SPEC.md section 2).
  KOKKOS_INLINE_FUNCTION bool keeps(std::int64_t t, std::int64_t u, int h, int i) const {
    const std::int64_t off = offset(h, i);
    if (off < 0) return false;
    if (causal && u > t) return false;
    return segment(t, i) == segment(u, i) && phase(t, i) == off && phase(u, i) == off;
  }

  /// Number of (branch, key) pairs query t of head h sees, over all branches
  /// (a key in two branches counts twice, docs/SPEC.md section 2 mixture). O(1).
  KOKKOS_INLINE_FUNCTION std::int64_t pairs_for_query(std::int64_t t, int h) const {
    std::int64_t n = 0;
    for (int i = 0; i < num_branches; ++i) {
      const std::int64_t off = offset(h, i);
      if (off < 0 || phase(t, i) != off) continue;
      const std::int64_t s = segment(t, i);
      const std::int64_t b = segment_begin(s, i) + off;
      const std::int64_t e = causal ? t + 1 : segment_end(s, i);
      if (e > b) n += (e - b - 1) / dilation_rate[i] + 1;
    }
    return n;
  }

  /// Throws std::invalid_argument unless the fields hold a pattern that
  /// dense() or dilated() could have made (its fields are public: a caller
  /// may change them; RingAttention checks before any kernel sees them).
  void validate() const {
    auto fail = [](const std::string &what) { throw std::invalid_argument("pattern: " + what); };
    if (seq_len < 1) fail("seq_len must be >= 1");
    if (heads < 1 || kv_heads < 1) fail("heads must be >= 1");
    if (heads % kv_heads != 0) fail("heads must be a multiple of kv_heads");
    if (num_branches < 1 || num_branches > max_branches)
      fail("the number of branches must be in [1, " + std::to_string(max_branches) + "]");
    const std::int64_t cap = std::max<std::int64_t>(seq_len, heads);
    for (int i = 0; i < num_branches; ++i) {
      if (segment_length[i] < 1 || segment_length[i] > seq_len)
        fail("segment lengths must be in [1, seq_len]");
      if (dilation_rate[i] < 1 || dilation_rate[i] > cap)
        fail("dilation rates must be in [1, max(seq_len, heads)]");
    }
    if (mixing == Mixing::head_groups && heads < num_branches)
      fail("head_groups mixing needs heads >= number of branches");
  }

private:
  static Pattern make_base(std::int64_t seq_len, int heads, int kv_heads, bool causal,
                           Mixing mixing) {
    if (seq_len < 1) throw std::invalid_argument("pattern: seq_len must be >= 1");
    if (heads < 1 || kv_heads < 1) throw std::invalid_argument("pattern: heads must be >= 1");
    if (heads % kv_heads != 0)
      throw std::invalid_argument("pattern: heads must be a multiple of kv_heads");
    Pattern p;
    p.seq_len = seq_len;
    p.heads = heads;
    p.kv_heads = kv_heads;
    p.causal = causal;
    p.mixing = mixing;
    return p;
  }
};

} // namespace ringattn

#endif
