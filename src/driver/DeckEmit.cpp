// The effective configuration as YAML: the `config:` of the results file and
// `ringattn validate`'s output, loadable again as a deck.
#include "Deck.hpp"
#include "DeckValues.hpp"

#include <yaml-cpp/yaml.h>

namespace ringattn::driver {

using Details::format_double;

const char *to_string(AttentionKind k) { return k == AttentionKind::dilated ? "dilated" : "dense"; }
const char *to_string(RingMode m) { return m == RingMode::mpi ? "mpi" : "simulated"; }
const char *to_string(InputSource s) { return s == InputSource::npy ? "npy" : "random"; }
const char *to_string(Mixing m) { return m == Mixing::head_groups ? "head_groups" : "mixture"; }
const char *to_string(PartitionKind p) {
  return p == PartitionKind::zigzag ? "zigzag" : "contiguous";
}

void emit_config(YAML::Emitter &out, const RunConfig &c) {
  auto path_or_null = [&](const char *key, const std::string &p) {
    out << YAML::Key << key << YAML::Value;
    if (p.empty())
      out << YAML::Null;
    else
      out << p;
  };
  auto int_list = [&](const char *key, const std::vector<std::int64_t> &v) {
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (std::int64_t x : v) out << x;
    out << YAML::EndSeq;
  };

  out << YAML::BeginMap;
  out << YAML::Key << "problem" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "batch" << YAML::Value << c.problem.batch;
  out << YAML::Key << "seq_len" << YAML::Value << c.problem.seq_len;
  out << YAML::Key << "heads" << YAML::Value << c.problem.heads;
  out << YAML::Key << "kv_heads" << YAML::Value << c.problem.kv_heads;
  out << YAML::Key << "head_dim" << YAML::Value << c.problem.head_dim;
  out << YAML::Key << "dtype" << YAML::Value << dtype_name(c.problem.dtype);
  out << YAML::EndMap;

  out << YAML::Key << "attention" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "kind" << YAML::Value << to_string(c.attention.kind);
  if (c.attention.kind == AttentionKind::dilated) {
    int_list("segment_lengths", c.attention.segment_lengths);
    int_list("dilation_rates", c.attention.dilation_rates);
    out << YAML::Key << "mixing" << YAML::Value << to_string(c.attention.mixing);
  }
  out << YAML::Key << "causal" << YAML::Value << c.attention.causal;
  out << YAML::Key << "scale" << YAML::Value
      << (c.attention.scale ? format_double(*c.attention.scale) : std::string("auto"));
  out << YAML::EndMap;

  out << YAML::Key << "ring" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "mode" << YAML::Value << to_string(c.ring.mode);
  out << YAML::Key << "size" << YAML::Value << c.ring.size;
  if (c.ring.mode == RingMode::mpi && c.ring.size == 0)
    out << YAML::Comment("0: the number of MPI ranks");
  out << YAML::Key << "partition" << YAML::Value << to_string(c.ring.partition);
  out << YAML::Key << "overlap" << YAML::Value << c.ring.overlap;
  out << YAML::EndMap;

  out << YAML::Key << "input" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "source" << YAML::Value << to_string(c.input.source);
  out << YAML::Key << "seed" << YAML::Value << c.input.seed;
  if (c.input.source == InputSource::npy) {
    out << YAML::Key << "q" << YAML::Value << c.input.q;
    out << YAML::Key << "k" << YAML::Value << c.input.k;
    out << YAML::Key << "v" << YAML::Value << c.input.v;
  }
  out << YAML::Key << "check_finite" << YAML::Value << c.input.check_finite;
  out << YAML::EndMap;

  out << YAML::Key << "verify" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << c.verify.enabled;
  out << YAML::Key << "rows" << YAML::Value << c.verify.rows;
  out << YAML::Key << "tolerance" << YAML::Value << format_double(c.verify.tolerance);
  out << YAML::EndMap;

  out << YAML::Key << "benchmark" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "warmup" << YAML::Value << c.benchmark.warmup;
  out << YAML::Key << "repeats" << YAML::Value << c.benchmark.repeats;
  out << YAML::EndMap;

  out << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "results" << YAML::Value << c.output.results;
  path_or_null("o", c.output.o);
  path_or_null("lse", c.output.lse);
  path_or_null("csv", c.output.csv);
  out << YAML::EndMap;

  if (!c.sweep.empty()) {
    out << YAML::Key << "sweep" << YAML::Value << YAML::BeginMap;
    for (const SweepAxis &a : c.sweep) {
      out << YAML::Key << a.key << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const std::string &v : a.values) out << YAML::Load(v);
      out << YAML::EndSeq;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

std::string describe(const RunConfig &cfg) {
  YAML::Emitter out;
  emit_config(out, cfg);
  return std::string(out.c_str()) + "\n";
}

} // namespace ringattn::driver
