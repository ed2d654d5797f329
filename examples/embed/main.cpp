// An application that embeds RingAttn: it owns MPI and Kokkos, its Views and
// its communicator, and calls the library on them.
//
// With MPI, the ring runs on a sub-communicator, not on MPI_COMM_WORLD: the
// world ranks in reverse order and, from 3 ranks on, without the last world
// rank (which sits the computation out). A library that reached for
// MPI_COMM_WORLD would then hang, or mix up which rows a rank owns, and the
// check below would fail. Each ring member makes only its own rows of Q, K
// and V (from their global positions), runs the MPI forward and checks its
// rows of O and LSE against a brute-force float64 computation of docs/SPEC.md section 2.
//
// Without MPI (RingAttn built with RingAttn_ENABLE_MPI=OFF), the same
// problems run on the simulated ring, in this process.
//
// Exit status: 0 when every row matches to 2e-5, 1 otherwise.

#include <RingAttn.hpp>

#include <Kokkos_Core.hpp>

#ifdef RINGATTN_ENABLE_MPI
#include <mpi.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>
#include <vector>

namespace {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;
using Tensor4 = Kokkos::View<float ****, Kokkos::LayoutRight, MemSpace>;
using Tensor3 = Kokkos::View<float ***, Kokkos::LayoutRight, MemSpace>;

constexpr double tolerance = 2e-5;

struct Problem {
  std::string name;
  std::int64_t batch = 1, seq_len = 256;
  int heads = 2, kv_heads = 2, head_dim = 16;
  bool causal = false;
  std::vector<std::int64_t> segments, rates; // empty: dense
  ringattn::PartitionKind partition = ringattn::PartitionKind::contiguous;

  ringattn::Pattern pattern() const {
    if (segments.empty()) return ringattn::Pattern::dense(seq_len, heads, kv_heads, causal);
    return ringattn::Pattern::dilated(seq_len, heads, kv_heads, causal, ringattn::Mixing::mixture,
                                      segments, rates);
  }
};

/// Input element of tensor `which` (0: Q, 1: K, 2: V) at a global position:
/// every rank computes the rows it owns, and the reference any row it needs.
float input(int which, std::int64_t b, std::int64_t t, int h, int d) {
  const double x = 0.7 * which + 0.0131 * double(t) * (d + 1) + 0.53 * h + 0.29 * d + 0.17 * b;
  return float(std::sin(x) + 0.25 * std::cos(3.1 * x + which));
}

/// Fills rows [0, rows) of a [B, rows, heads, D] view; local row r holds
/// global position position(r).
template <class Position>
void fill(const Tensor4 &view, int which, Position position) {
  auto host = Kokkos::create_mirror_view(view);
  for (std::size_t b = 0; b < host.extent(0); ++b)
    for (std::size_t r = 0; r < host.extent(1); ++r)
      for (std::size_t h = 0; h < host.extent(2); ++h)
        for (std::size_t d = 0; d < host.extent(3); ++d)
          host(b, r, h, d) =
              input(which, std::int64_t(b), position(std::int64_t(r)), int(h), int(d));
  Kokkos::deep_copy(view, host);
}

/// Brute force in float64, straight from docs/SPEC.md section 2 (mixture): row t of head h
/// sees, in each branch whose phase of t equals the head's offset h % r, the
/// keys of t's segment with that phase (u <= t when causal); one softmax over
/// all (branch, key) pairs. Returns LSE and writes O[0..D).
double reference_row(const Problem &p, std::int64_t b, std::int64_t t, int h, double *o) {
  const int D = p.head_dim;
  const int g = h / (p.heads / p.kv_heads);
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> q(D);
  for (int d = 0; d < D; ++d) q[d] = input(0, b, t, h, d);

  const std::vector<std::int64_t> w =
      p.segments.empty() ? std::vector<std::int64_t>{p.seq_len} : p.segments;
  const std::vector<std::int64_t> r = p.rates.empty() ? std::vector<std::int64_t>{1} : p.rates;
  std::vector<std::int64_t> keys; // with repetition: a key in two branches counts twice
  for (std::size_t i = 0; i < w.size(); ++i) {
    const std::int64_t s = t / w[i], begin = s * w[i], end = std::min(begin + w[i], p.seq_len);
    const std::int64_t offset = h % r[i];
    if ((t - begin) % r[i] != offset) continue;
    for (std::int64_t u = begin; u < end; ++u)
      if ((u - begin) % r[i] == offset && (!p.causal || u <= t)) keys.push_back(u);
  }
  std::fill(o, o + D, 0.0);
  if (keys.empty()) return -std::numeric_limits<double>::infinity();

  std::vector<double> score(keys.size());
  double m = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < keys.size(); ++j) {
    double dot = 0;
    for (int d = 0; d < D; ++d) dot += q[d] * double(input(1, b, keys[j], g, d));
    score[j] = scale * dot;
    m = std::max(m, score[j]);
  }
  double sum = 0;
  for (double s : score) sum += std::exp(s - m);
  const double lse = m + std::log(sum);
  for (std::size_t j = 0; j < keys.size(); ++j) {
    const double weight = std::exp(score[j] - lse);
    for (int d = 0; d < D; ++d) o[d] += weight * double(input(2, b, keys[j], g, d));
  }
  return lse;
}

double difference(double a, double b) {
  if (std::isinf(a) && std::isinf(b) && (a < 0) == (b < 0)) return 0;
  return std::isfinite(a) && std::isfinite(b) ? std::abs(a - b)
                                              : std::numeric_limits<double>::infinity();
}

/// Largest |error| over the rows of O and LSE given (local row r holds
/// global position position(r)).
template <class Position>
double max_error(const Problem &p, const Tensor4 &o, const Tensor3 &lse, Position position) {
  auto o_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
  auto lse_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lse);
  std::vector<double> ref(p.head_dim);
  double err = 0;
  for (std::int64_t b = 0; b < p.batch; ++b)
    for (std::size_t r = 0; r < o_host.extent(1); ++r)
      for (int h = 0; h < p.heads; ++h) {
        const double l = reference_row(p, b, position(std::int64_t(r)), h, ref.data());
        err = std::max(err, difference(l, lse_host(b, h, r)));
        for (int d = 0; d < p.head_dim; ++d)
          err = std::max(err, difference(ref[d], o_host(b, r, h, d)));
      }
  return err;
}

#ifdef RINGATTN_ENABLE_MPI
/// This rank's rows only, on the application's communicator.
double run(const Problem &p, MPI_Comm comm) {
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  const ringattn::Partition partition(p.partition, p.seq_len, size);
  const std::int64_t rows = partition.local_size(rank);
  auto position = [&](std::int64_t row) { return partition.global_position(rank, row); };

  Tensor4 q("q", p.batch, rows, p.heads, p.head_dim), o("o", p.batch, rows, p.heads, p.head_dim);
  Tensor4 k("k", p.batch, rows, p.kv_heads, p.head_dim);
  Tensor4 v("v", p.batch, rows, p.kv_heads, p.head_dim);
  Tensor3 lse("lse", p.batch, p.heads, rows);
  fill(q, 0, position);
  fill(k, 1, position);
  fill(v, 2, position);

  ringattn::RingOptions options;
  options.partition = p.partition;
  const ringattn::RingAttention<ExecSpace, float> attention(p.pattern(), options);
  // What the largest rank will hold, before anything is allocated: the
  // library's ring model, the numbers `ringattn plan` prints.
  const ringattn::RingModel model = attention.model(p.batch, p.head_dim, size);
  if (rank == 0)
    std::printf("embed: %s: model of the largest member %lld bytes\n", p.name.c_str(),
                (long long)model.memory[std::size_t(model.largest_member())].total());
  // The plan (the ring's schedule, its message buffers and a private
  // duplicate of comm) is built once, at set-up, and reused every step;
  // attention.forward(comm, q, k, v, o, lse) would build one per call.
  const auto plan = attention.make_plan(comm, p.batch, p.head_dim);
  for (int step = 0; step < 2; ++step) attention.forward(plan, q, k, v, o, lse);
  return max_error(p, o, lse, position);
}
#else
/// The whole sequence in this process, on a simulated ring of 3 members.
double run(const Problem &p) {
  auto position = [](std::int64_t row) { return row; };
  Tensor4 q("q", p.batch, p.seq_len, p.heads, p.head_dim);
  Tensor4 o("o", p.batch, p.seq_len, p.heads, p.head_dim);
  Tensor4 k("k", p.batch, p.seq_len, p.kv_heads, p.head_dim);
  Tensor4 v("v", p.batch, p.seq_len, p.kv_heads, p.head_dim);
  Tensor3 lse("lse", p.batch, p.heads, p.seq_len);
  fill(q, 0, position);
  fill(k, 1, position);
  fill(v, 2, position);

  ringattn::RingOptions options;
  options.partition = p.partition;
  options.members = 3;
  const ringattn::RingAttention<ExecSpace, float> attention(p.pattern(), options);
  std::printf("embed: %s: model of the process %lld bytes\n", p.name.c_str(),
              (long long)attention.model(p.batch, p.head_dim).process.total());
  attention.forward(q, k, v, o, lse);
  return max_error(p, o, lse, position);
}
#endif

Problem dense_causal() {
  Problem p;
  p.name = "dense causal, contiguous";
  p.causal = true;
  return p;
}

Problem dilated_gqa() {
  Problem p;
  p.name = "dilated mixture w=(64,128) r=(1,2), GQA 2:1, zigzag";
  p.batch = 2;
  p.kv_heads = 1;
  p.segments = {64, 128};
  p.rates = {1, 2};
  p.partition = ringattn::PartitionKind::zigzag;
  return p;
}

const std::vector<Problem> problems = {dense_causal(), dilated_gqa()};

} // namespace

int main(int argc, char *argv[]) {
  int world_rank = 0;
#ifdef RINGATTN_ENABLE_MPI
  MPI_Init(&argc, &argv);
  int world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  // The application's own communicator: world ranks in reverse order, the
  // last one left out from 3 ranks on.
  const bool member = world_size < 3 || world_rank != world_size - 1;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, member ? 0 : MPI_UNDEFINED, world_size - 1 - world_rank, &comm);
  int ring_size = 0;
  if (member) MPI_Comm_size(comm, &ring_size);
  MPI_Bcast(&ring_size, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
  Kokkos::initialize(argc, argv);
  int status = 0;
  {
    double worst = 0;
    for (const Problem &p : problems) {
      double err = 0;
      try {
#ifdef RINGATTN_ENABLE_MPI
        if (comm != MPI_COMM_NULL) err = run(p, comm);
#else
        err = run(p);
#endif
      } catch (const std::exception &e) {
        std::fprintf(stderr, "embed: %s: %s\n", p.name.c_str(), e.what());
#ifdef RINGATTN_ENABLE_MPI
        MPI_Abort(MPI_COMM_WORLD, 1);
#endif
        err = std::numeric_limits<double>::infinity();
      }
#ifdef RINGATTN_ENABLE_MPI
      MPI_Allreduce(MPI_IN_PLACE, &err, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (world_rank == 0)
        std::printf("embed: %-52s ring of %d ranks (sub-communicator of %d): max |error| %.3g\n",
                    p.name.c_str(), ring_size, world_size, err);
#else
      std::printf("embed: %-52s simulated ring of 3 members: max |error| %.3g\n", p.name.c_str(),
                  err);
#endif
      if (!(err <= worst)) worst = err;
    }
    status = worst <= tolerance ? 0 : 1;
    if (world_rank == 0)
      std::printf("embed: %s (max |error| %.3g, tolerance %.1g)\n",
                  status == 0 ? "PASSED" : "FAILED", worst, tolerance);
  }
  Kokkos::finalize();
#ifdef RINGATTN_ENABLE_MPI
  if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  MPI_Finalize();
#endif
  return status;
}
