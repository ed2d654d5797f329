#ifndef RINGATTN_DRIVER_DECK_HPP
#define RINGATTN_DRIVER_DECK_HPP

// The input deck (docs/SPEC.md section 5): YAML file + `--set` overrides -> a typed,
// validated RunConfig with every default filled in. Only the driver knows
// about YAML; nothing here touches Kokkos or MPI at run time.

#include "DType.hpp"

#include <pattern/RingAttn_Partition.hpp>
#include <pattern/RingAttn_Pattern.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace YAML {
class Emitter;
}

namespace ringattn::driver {

/// A bad deck or a bad `--set` (exit code 2). what() is the whole message,
/// e.g. `deck.yaml:7:20: attention.dilation_rates: expected 3 values (one per
/// segment length), got 2` or `--set problem.seq_len=abc: expected an integer
/// >= 1, got "abc"`.
class DeckError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

enum class AttentionKind { dense, dilated };
enum class RingMode { mpi, simulated };
enum class InputSource { random, npy };

struct ProblemConfig {
  std::int64_t batch = 1;
  std::int64_t seq_len = 0;  // required, >= 1
  int heads = 0;             // required, >= 1
  int kv_heads = 0;          // default: heads; divides heads
  std::int64_t head_dim = 0; // required, >= 1
  DType dtype = DType::float32;
};

struct AttentionConfig {
  AttentionKind kind = AttentionKind::dense;
  /// Dilated only (empty for dense): same length, 1..64 branches, 1 <= r <= w.
  std::vector<std::int64_t> segment_lengths;
  std::vector<std::int64_t> dilation_rates;
  Mixing mixing = Mixing::mixture;
  bool causal = false;
  /// nullopt = "auto" = 1/sqrt(head_dim); otherwise positive and finite.
  std::optional<double> scale;
  /// Also compute dQ, dK, dV from dO (docs/SPEC.md section 7).
  bool backward = false;
};

struct RingConfig {
  RingMode mode = RingMode::simulated;
  /// Ring members. Simulated: >= 1 (default 1). Mpi: 0 (the default) means
  /// "the number of ranks"; see resolve_ring_size().
  int size = 1;
  PartitionKind partition = PartitionKind::contiguous;
  bool overlap = true;
};

struct InputConfig {
  InputSource source = InputSource::random;
  std::uint64_t seed = 42;
  /// npy only (empty for random): paths resolved against the deck's folder.
  std::string q, k, v;
  /// npy with attention.backward only: dO [B, N, H, D] (random input
  /// generates dO too).
  std::string dout;
  /// Scan each member's inputs for NaN and Inf after loading them, and fail
  /// (exit 2) naming the tensor, the first bad (batch, position, head) and
  /// the file, rather than carry them into the results.
  bool check_finite = true;
};

struct VerifyConfig {
  bool enabled = true;
  std::int64_t rows = 64;  // >= 0; may exceed batch*seq_len (then: all rows)
  double tolerance = 1e-4; // default: default_tolerance(problem.dtype)
};

struct BenchmarkConfig {
  int warmup = 1;  // >= 0
  int repeats = 5; // >= 1
};

struct OutputConfig {
  std::string results = "results.yaml"; // never empty
  std::string o;                        // empty = not written
  std::string lse;                      // empty = not written
  std::string dq, dk, dv;               // backward only; empty = not written
  std::string csv; // "results.csv" by default when the deck has a sweep, else empty
};

/// One sweep axis: a dotted key and the values it takes, each as YAML text
/// (a scalar such as `4096`, or a flow sequence such as `[512, 1024]`).
struct SweepAxis {
  std::string key;
  std::vector<std::string> values;
};
/// One point of a sweep: (dotted key, YAML value text) per axis.
using SweepPoint = std::vector<std::pair<std::string, std::string>>;

namespace Details {
struct DeckSource; // the parsed deck and overrides, kept for re-validation
}

/// The effective deck: every key of docs/SPEC.md section 5 with its default filled in.
struct RunConfig {
  std::string deck_path; // as given on the command line
  std::string deck_dir;  // the folder relative paths were resolved against

  ProblemConfig problem;
  AttentionConfig attention;
  RingConfig ring;
  InputConfig input;
  VerifyConfig verify;
  BenchmarkConfig benchmark;
  OutputConfig output;

  /// Scaling-study axes (cartesian product); empty when the deck has none.
  /// Every point was validated by load_deck().
  std::vector<SweepAxis> sweep;
  /// For a config made by apply_sweep_point(): the point it is (else empty).
  SweepPoint sweep_point;

  /// Where each key given in the deck or by --set came from, for error
  /// messages about it found later (e.g. an .npy of the wrong shape).
  std::map<std::string, std::string> origins;
  std::shared_ptr<const Details::DeckSource> source;

  /// Prefix for an error about `key` (dotted): `deck.yaml:5:26: input.q` when
  /// the key is in the file, `--set input.q=x.npy` when given by --set, the
  /// section's location or `deck.yaml: key` when the key took its default.
  /// Use as `throw DeckError(cfg.where("input.q") + ": " + what)`.
  std::string where(const std::string &key) const;

  /// 1/sqrt(head_dim) for "auto", else the given scale.
  double effective_scale() const;
  std::vector<std::int64_t> q_shape() const;   // [B, N, H, D]
  std::vector<std::int64_t> kv_shape() const;  // [B, N, Hkv, D]
  std::vector<std::int64_t> o_shape() const;   // [B, N, H, D]
  std::vector<std::int64_t> lse_shape() const; // [B, H, N]
};

/// Reads the deck at `path`, applies `--set KEY=VALUE` overrides (strings as
/// typed after --set: dotted key, value parsed as a YAML scalar or flow
/// sequence), checks every key and the cross-key rules, and every sweep point.
/// Relative paths in the file are resolved against the deck's folder; those
/// given by --set against the current directory. `--set` of a key that is a
/// sweep axis pins it (removes the axis); `--set sweep.KEY=[...]` sets an axis.
/// Throws DeckError.
RunConfig load_deck(const std::string &path, const std::vector<std::string> &set_overrides = {});
/// The same from YAML text; `name` stands for the file in messages and
/// `base_dir` is the folder relative paths are resolved against.
RunConfig load_deck_string(const std::string &yaml, const std::string &name,
                           const std::vector<std::string> &set_overrides = {},
                           const std::string &base_dir = "");

/// Number of sweep points (1 when there is no sweep).
std::size_t sweep_size(const RunConfig &cfg);
/// Point `index` of the cartesian product, last axis varying fastest.
SweepPoint sweep_point(const RunConfig &cfg, std::size_t index);
/// The config of one point: the deck with `point`'s values applied on top of
/// the file and the --set overrides, validated again; its `sweep` is empty and
/// its `sweep_point` is `point`. Throws DeckError.
RunConfig apply_sweep_point(const RunConfig &cfg, const SweepPoint &point);
/// All points in order (just {cfg} when there is no sweep).
std::vector<RunConfig> expand_sweep(const RunConfig &cfg);

/// The effective configuration as YAML (loadable again as a deck).
std::string describe(const RunConfig &cfg);
/// The same as a YAML map into an emitter, e.g. after `out << YAML::Key <<
/// "config" << YAML::Value;`.
void emit_config(YAML::Emitter &out, const RunConfig &cfg);

/// The attention pattern of the deck (dense or dilated), for `ringattn::Pattern`.
Pattern make_pattern(const RunConfig &cfg);
/// Mode mpi: ring.size 0 becomes `num_ranks`; any other value must equal it.
/// Throws DeckError naming ring.size otherwise (also when size > seq_len).
void resolve_ring_size(RunConfig &cfg, int num_ranks);
/// What this build of the program can run: mode mpi needs a build with MPI
/// (RingAttn_ENABLE_MPI=ON). Checks every sweep point; throws DeckError at
/// ring.mode, saying what to do, rather than let such a deck run as nothing.
void check_build_supports(const RunConfig &cfg);
/// Whether any point of the deck (any sweep point) runs in mode mpi.
bool needs_mpi(const RunConfig &cfg);
/// Source npy: opens q, k and v and checks their headers (dtype float16, float32 or
/// float64, C order, the shapes of docs/SPEC.md section 1). Throws DeckError at input.q/k/v.
void check_input_files(const RunConfig &cfg);

const char *to_string(AttentionKind);
const char *to_string(RingMode);
const char *to_string(InputSource);
const char *to_string(Mixing);
const char *to_string(PartitionKind);

} // namespace ringattn::driver

#endif
