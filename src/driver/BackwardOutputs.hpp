#ifndef RINGATTN_DRIVER_BACKWARDOUTPUTS_HPP
#define RINGATTN_DRIVER_BACKWARDOUTPUTS_HPP

// Where the backward of `ringattn run` puts its results (docs/SPEC.md section 7): the dQ,
// dK and dV files, and the sampled rows kept for verification. Both modes
// use them: the MPI ring (BackwardRun.cpp) and the simulated ring member
// by member (SimulatedBackward.cpp).

#include "Commands.hpp"
#include "RunModes.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace ringattn::driver {

/// dQ, dK and dV files, as OutputFiles does O and LSE: created under
/// temporary names by rank 0, written by every member, renamed at commit.
class GradientFiles {
public:
  GradientFiles(const RunConfig &cfg, const DriverComm &comm) : cfg_(cfg), comm_(comm) {}

  int open() {
    const std::string *paths[3] = {&cfg_.output.dq, &cfg_.output.dk, &cfg_.output.dv};
    const std::vector<std::int64_t> shapes[3] = {cfg_.q_shape(), cfg_.kv_shape(), cfg_.kv_shape()};
    int rc = exit_ok;
    std::string message;
    const long token = comm_.broadcast(long(::getpid()));
    const DType dtype = output_file_dtype(cfg_.problem.dtype); // 16-bit: float32 files
    try {
      for (int i = 0; i < 3; ++i) {
        if (paths[i]->empty()) continue;
        if (comm_.rank() == 0) {
          files_[i].emplace(*paths[i], token);
          writers_[i] = NpyWriter::create(files_[i]->temp_path(), dtype, shapes[i]);
        }
      }
    } catch (const std::exception &e) {
      rc = exit_bad_input;
      message = std::string("ringattn: error: ") + e.what();
    }
    if ((rc = comm_.agree(rc, message)) != exit_ok) return rc;
    try {
      for (int i = 0; i < 3; ++i)
        if (!paths[i]->empty() && comm_.rank() != 0)
          writers_[i] =
              NpyWriter::open(AtomicFile::temp_path_for(*paths[i], token), dtype, shapes[i]);
    } catch (const std::exception &e) {
      rc = exit_failure;
      message = std::string("ringattn: error: ") + e.what();
    }
    return comm_.agree(rc, message);
  }

  /// Member p's rows of tensor i (0 dQ, 1 dK, 2 dV), host [B, n, heads, D].
  template <class Scalar>
  void write_member(int i, const Partition &part, int p, const Scalar *host) {
    if (!writers_[i]) return;
    const std::int64_t B = cfg_.problem.batch, N = cfg_.problem.seq_len;
    const std::int64_t row =
        (i == 0 ? cfg_.problem.heads : cfg_.problem.kv_heads) * cfg_.problem.head_dim;
    const std::int64_t n = part.local_size(p);
    for (std::int64_t b = 0; b < B; ++b)
      for (int r = 0; r < part.num_ranges(); ++r) {
        const Range g = part.range(p, r);
        if (g.size() == 0) continue;
        const std::int64_t l = part.range_local_begin(p, r);
        writers_[i]->write((b * N + g.begin) * row, g.size() * row, host + (b * n + l) * row);
      }
  }

  void commit() {
    for (auto &w : writers_)
      if (w) w->close();
    comm_.barrier();
    for (auto &f : files_)
      if (f) f->commit();
  }

private:
  const RunConfig &cfg_;
  const DriverComm &comm_;
  std::optional<AtomicFile> files_[3];
  std::optional<NpyWriter> writers_[3];
};

/// The sampled rows of dQ (query rows) and of dK, dV (key rows) that this
/// process's members produced, by sample index.
struct GradientSamples {
  std::map<std::size_t, std::vector<double>> dq, dk, dv;
};

/// Member p's rows of a gradient (host [B, n, heads, D], `width` = heads *
/// D values a row) at the sampled positions it owns, into `got`.
template <class Scalar>
void capture_gradient_rows(const std::vector<SampledRow> &samples, const Partition &part, int p,
                           std::int64_t width, const Scalar *host,
                           std::map<std::size_t, std::vector<double>> &got) {
  const std::int64_t n = part.local_size(p);
  for (std::size_t s = 0; s < samples.size(); ++s) {
    if (part.owner(samples[s].t) != p) continue;
    const std::int64_t row = part.local_index(samples[s].t);
    std::vector<double> values(static_cast<std::size_t>(width));
    for (std::int64_t e = 0; e < width; ++e)
      values[std::size_t(e)] = double(host[(samples[s].b * n + row) * width + e]);
    got[s] = std::move(values);
  }
}

/// The simulated ring's backward, member by member (SimulatedBackward.cpp):
/// one forward for O and LSE (spilled to a temporary file), then the
/// warm-up and timed repeats; gradients to `files` and `got` on the last.
template <class Scalar>
int backward_member_by_member(const PointRun<Scalar> &run, GradientFiles &files,
                              BackwardReport &report, RingStats &stats, GradientSamples &got);

} // namespace ringattn::driver

#endif
