#include "Results.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

namespace ringattn::driver {

double RunReport::median_seconds() const {
  if (repeat_seconds.empty()) return 0;
  std::vector<double> t = repeat_seconds;
  std::sort(t.begin(), t.end());
  const std::size_t n = t.size();
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

double BackwardReport::median_seconds() const {
  if (repeat_seconds.empty()) return 0;
  std::vector<double> t = repeat_seconds;
  std::sort(t.begin(), t.end());
  const std::size_t n = t.size();
  return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

namespace {

template <class T>
void emit_list(YAML::Emitter &out, const std::vector<T> &values) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const T &v : values) out << v;
  out << YAML::EndSeq;
}

double finite_or_max(double x) { return std::isfinite(x) ? x : std::numeric_limits<double>::max(); }

/// What a run held beyond the process before its data, over the model (0
/// without a model): the memory-model check's ratio.
double peak_over_baseline_to_model(std::int64_t peak, std::int64_t baseline, std::int64_t model) {
  return model > 0 ? double(peak - baseline) / double(model) : 0.0;
}

/// The backward pass's section (docs/SPEC.md section 7): its own timing, work (10 D flops
/// per kept pair), throughput, communication (K/V blocks plus the returning
/// dK/dV partials) and verification.
void emit_backward(YAML::Emitter &out, const BackwardReport &b, const RunConfig &c) {
  out << YAML::Key << "backward" << YAML::Value << YAML::BeginMap;
  const double median = b.median_seconds();
  out << YAML::Key << "timing" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "median_s" << YAML::Value << median;
  out << YAML::Key << "min_s" << YAML::Value
      << (b.repeat_seconds.empty()
              ? 0.0
              : *std::min_element(b.repeat_seconds.begin(), b.repeat_seconds.end()));
  out << YAML::Key << "max_s" << YAML::Value
      << (b.repeat_seconds.empty()
              ? 0.0
              : *std::max_element(b.repeat_seconds.begin(), b.repeat_seconds.end()));
  out << YAML::Key << "repeats" << YAML::Value << b.repeat_seconds.size();
  out << YAML::EndMap;
  out << YAML::Key << "work" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "flops" << YAML::Value << b.flops;
  out << YAML::Key << "key_pairs" << YAML::Value << b.key_pairs;
  out << YAML::Key << "flops_per_pair" << YAML::Value << 10 * c.problem.head_dim;
  out << YAML::EndMap;
  const double tokens = double(c.problem.batch) * double(c.problem.seq_len);
  out << YAML::Key << "throughput" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "gflops" << YAML::Value << (median > 0 ? b.flops / median * 1e-9 : 0.0);
  out << YAML::Key << "tokens_per_s" << YAML::Value << (median > 0 ? tokens / median : 0.0);
  out << YAML::EndMap;
  out << YAML::Key << "communication" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "bytes_sent_per_member" << YAML::Value;
  emit_list(out, b.bytes_sent_per_member);
  out << YAML::Key << "model_bytes_sent_per_member" << YAML::Value;
  emit_list(out, b.model_bytes_sent_per_member);
  out << YAML::Key << "hops_made" << YAML::Value << b.hops_made;
  out << YAML::Key << "hops_skipped" << YAML::Value << b.hops_skipped;
  out << YAML::EndMap;
  out << YAML::Key << "memory" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "peak_bytes" << YAML::Value << b.peak_bytes;
  out << YAML::Key << "peak_scope" << YAML::Value << "process";
  out << YAML::Key << "baseline_bytes" << YAML::Value << b.baseline_bytes;
  out << YAML::Key << "model_bytes" << YAML::Value << b.model_bytes;
  out << YAML::Key << "peak_over_baseline_to_model" << YAML::Value
      << peak_over_baseline_to_model(b.peak_bytes, b.baseline_bytes, b.model_bytes);
  out << YAML::EndMap;
  out << YAML::Key << "verify" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << b.verified;
  out << YAML::Key << "dq_rows_checked" << YAML::Value << b.dq_rows;
  out << YAML::Key << "dkv_rows_checked" << YAML::Value << b.dkv_rows;
  out << YAML::Key << "max_abs_error_dq" << YAML::Value << finite_or_max(b.max_abs_error_dq);
  out << YAML::Key << "max_abs_error_dk" << YAML::Value << finite_or_max(b.max_abs_error_dk);
  out << YAML::Key << "max_abs_error_dv" << YAML::Value << finite_or_max(b.max_abs_error_dv);
  out << YAML::Key << "nonfinite" << YAML::Value << b.nonfinite;
  out << YAML::Key << "passed" << YAML::Value << b.passed(c.verify.tolerance);
  out << YAML::EndMap;
  out << YAML::EndMap;
}

void emit_report_body(YAML::Emitter &out, const RunReport &r) {
  const RunConfig &c = r.config;
  out << YAML::Key << "ring" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "mode" << YAML::Value << to_string(c.ring.mode);
  out << YAML::Key << "size" << YAML::Value << c.ring.size;
  out << YAML::Key << "partition" << YAML::Value << to_string(c.ring.partition);
  out << YAML::Key << "overlap" << YAML::Value << c.ring.overlap;
  out << YAML::EndMap;

  const double median = r.median_seconds();
  out << YAML::Key << "timing" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "median_s" << YAML::Value << median;
  out << YAML::Key << "min_s" << YAML::Value
      << (r.repeat_seconds.empty()
              ? 0.0
              : *std::min_element(r.repeat_seconds.begin(), r.repeat_seconds.end()));
  out << YAML::Key << "max_s" << YAML::Value
      << (r.repeat_seconds.empty()
              ? 0.0
              : *std::max_element(r.repeat_seconds.begin(), r.repeat_seconds.end()));
  out << YAML::Key << "repeats" << YAML::Value << r.repeat_seconds.size();
  out << YAML::Key << "warmup" << YAML::Value << c.benchmark.warmup;
  out << YAML::EndMap;

  out << YAML::Key << "work" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "flops" << YAML::Value << r.flops;
  out << YAML::Key << "key_pairs" << YAML::Value << r.key_pairs;
  out << YAML::EndMap;

  const double tokens = double(c.problem.batch) * double(c.problem.seq_len);
  out << YAML::Key << "throughput" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "gflops" << YAML::Value << (median > 0 ? r.flops / median * 1e-9 : 0.0);
  out << YAML::Key << "tokens_per_s" << YAML::Value << (median > 0 ? tokens / median : 0.0);
  out << YAML::EndMap;

  out << YAML::Key << "memory" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "peak_bytes_per_member" << YAML::Value;
  emit_list(out, r.peak_bytes_per_member);
  out << YAML::Key << "peak_scope" << YAML::Value << r.peak_scope;
  out << YAML::Key << "model_bytes_per_member" << YAML::Value << r.model.total();
  out << YAML::Key << "baseline_bytes" << YAML::Value << r.baseline_bytes;
  std::int64_t peak = 0;
  for (auto p : r.peak_bytes_per_member) peak = std::max(peak, p);
  out << YAML::Key << "peak_over_baseline_to_model" << YAML::Value
      << peak_over_baseline_to_model(peak, r.baseline_bytes, r.model.total());
  out << YAML::Key << "model" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "q" << YAML::Value << r.model.q;
  out << YAML::Key << "k" << YAML::Value << r.model.k;
  out << YAML::Key << "v" << YAML::Value << r.model.v;
  out << YAML::Key << "o" << YAML::Value << r.model.o;
  out << YAML::Key << "lse" << YAML::Value << r.model.lse;
  out << YAML::Key << "kv_blocks" << YAML::Value << r.model.blocks;
  out << YAML::Key << "tiles" << YAML::Value << r.model.tiles;
  out << YAML::Key << "schedule" << YAML::Value << r.model.schedule;
  out << YAML::EndMap;
  out << YAML::EndMap;

  out << YAML::Key << "communication" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "bytes_sent_per_member" << YAML::Value;
  emit_list(out, r.bytes_sent_per_member);
  const std::int64_t model_max = r.model_bytes_sent_per_member.empty()
                                     ? 0
                                     : *std::max_element(r.model_bytes_sent_per_member.begin(),
                                                         r.model_bytes_sent_per_member.end());
  out << YAML::Key << "model_bytes_per_member" << YAML::Value << model_max;
  out << YAML::Key << "model_bytes_sent_per_member" << YAML::Value;
  emit_list(out, r.model_bytes_sent_per_member);
  out << YAML::Key << "hops_made" << YAML::Value << r.hops_made;
  out << YAML::Key << "hops_skipped" << YAML::Value << r.hops_skipped;
  out << YAML::EndMap;

  out << YAML::Key << "balance" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "compute_seconds_per_member" << YAML::Value;
  emit_list(out, r.compute_seconds_per_member);
  const auto &cs = r.compute_seconds_per_member;
  const double mean =
      cs.empty() ? 0 : std::accumulate(cs.begin(), cs.end(), 0.0) / double(cs.size());
  out << YAML::Key << "max_over_mean" << YAML::Value
      << (mean > 0 ? *std::max_element(cs.begin(), cs.end()) / mean : 0.0);
  out << YAML::EndMap;

  out << YAML::Key << "verify" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "enabled" << YAML::Value << r.verified;
  out << YAML::Key << "rows_checked" << YAML::Value << r.verify.rows;
  out << YAML::Key << "max_abs_error_o" << YAML::Value << finite_or_max(r.verify.max_abs_error_o);
  out << YAML::Key << "max_abs_error_lse" << YAML::Value
      << finite_or_max(r.verify.max_abs_error_lse);
  out << YAML::Key << "nonfinite" << YAML::Value << r.verify.nonfinite;
  out << YAML::Key << "tolerance" << YAML::Value << c.verify.tolerance;
  out << YAML::Key << "tolerance_lse" << YAML::Value
      << lse_tolerance(c.problem.dtype, c.verify.tolerance);
  out << YAML::Key << "passed" << YAML::Value << r.passed();
  out << YAML::EndMap;
  if (r.backward) emit_backward(out, *r.backward, c);
}

} // namespace

std::string results_yaml(const RunConfig &deck, const std::vector<RunReport> &reports) {
  bool ok = true;
  for (const auto &r : reports) ok = ok && r.passed();
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "status" << YAML::Value << (ok ? "ok" : "verification_failed");
  if (reports.size() == 1 && deck.sweep.empty()) {
    out << YAML::Key << "config" << YAML::Value;
    emit_config(out, reports.front().config);
    emit_report_body(out, reports.front());
  } else {
    out << YAML::Key << "config" << YAML::Value;
    emit_config(out, deck);
    out << YAML::Key << "points" << YAML::Value << YAML::BeginSeq;
    for (const auto &r : reports) {
      out << YAML::BeginMap;
      out << YAML::Key << "sweep_point" << YAML::Value << YAML::Flow << YAML::BeginMap;
      for (const auto &[key, value] : r.config.sweep_point)
        out << YAML::Key << key << YAML::Value << value;
      out << YAML::EndMap;
      out << YAML::Key << "status" << YAML::Value << (r.passed() ? "ok" : "verification_failed");
      emit_report_body(out, r);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string csv_header(const RunConfig &deck) {
  std::ostringstream s;
  for (const auto &axis : deck.sweep) s << axis.key << ",";
  s << "seq_len,ring_size,partition,median_s,min_s,max_s,gflops,tokens_per_s,key_pairs,"
       "peak_bytes_max,model_bytes_per_member,baseline_bytes,bytes_sent_max,"
       "model_bytes_sent_max,compute_imbalance,verify_passed\n";
  return s.str();
}

std::string csv_row(const RunReport &r) {
  const RunConfig &c = r.config;
  std::ostringstream s;
  s.precision(9);
  for (const auto &[key, value] : c.sweep_point) s << value << ",";
  const double median = r.median_seconds();
  auto max_of = [](const auto &v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    return v.empty() ? T(0) : *std::max_element(v.begin(), v.end());
  };
  const double mean_compute = r.compute_seconds_per_member.empty()
                                  ? 0
                                  : std::accumulate(r.compute_seconds_per_member.begin(),
                                                    r.compute_seconds_per_member.end(), 0.0) /
                                        double(r.compute_seconds_per_member.size());
  s << c.problem.seq_len << "," << c.ring.size << "," << to_string(c.ring.partition) << ","
    << median << ","
    << (r.repeat_seconds.empty()
            ? 0.0
            : *std::min_element(r.repeat_seconds.begin(), r.repeat_seconds.end()))
    << "," << max_of(r.repeat_seconds) << "," << (median > 0 ? r.flops / median * 1e-9 : 0.0) << ","
    << (median > 0 ? double(c.problem.batch * c.problem.seq_len) / median : 0.0) << ","
    << r.key_pairs << "," << max_of(r.peak_bytes_per_member) << "," << r.model.total() << ","
    << r.baseline_bytes << "," << max_of(r.bytes_sent_per_member) << ","
    << max_of(r.model_bytes_sent_per_member) << ","
    << (mean_compute > 0 ? max_of(r.compute_seconds_per_member) / mean_compute : 0.0) << ","
    << (r.passed() ? 1 : 0) << "\n";
  return s.str();
}

} // namespace ringattn::driver
