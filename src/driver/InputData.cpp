#include "InputData.hpp"

#include <core/detail/RingAttn_CounterRandom.hpp>

#include <Kokkos_Core.hpp>

#include <array>
#include <optional>
#include <stdexcept>

namespace ringattn::driver {

InputData::InputData(const RunConfig &cfg)
    : batch_(cfg.problem.batch), seq_len_(cfg.problem.seq_len), head_dim_(cfg.problem.head_dim),
      heads_(cfg.problem.heads), kv_heads_(cfg.problem.kv_heads), dtype_(cfg.problem.dtype) {}

void InputData::read_rows(TensorId id, std::int64_t b, std::int64_t t0, std::int64_t count,
                          double *dst) const {
  read_source_rows(id, b, t0, count, dst);
  const std::int64_t n = count * std::int64_t(heads(id)) * head_dim_;
  if (dtype_ == DType::bfloat16)
    for (std::int64_t e = 0; e < n; ++e) dst[e] = double(bfloat16_t(dst[e]));
  else if (dtype_ == DType::float16)
    for (std::int64_t e = 0; e < n; ++e) dst[e] = double(float16_t(dst[e]));
}

namespace {

/// A source's fill_member overloads, each calling Source::fill<Scalar>.
template <class Source>
class FilledBy : public InputData {
public:
  using InputData::InputData;
  void fill_member(TensorId id, const Partition &partition, int p, float *dst) const override {
    self().fill(id, partition, p, dst);
  }
  void fill_member(TensorId id, const Partition &partition, int p, double *dst) const override {
    self().fill(id, partition, p, dst);
  }
  void fill_member(TensorId id, const Partition &partition, int p, bfloat16_t *dst) const override {
    self().fill(id, partition, p, dst);
  }
  void fill_member(TensorId id, const Partition &partition, int p, float16_t *dst) const override {
    self().fill(id, partition, p, dst);
  }

private:
  const Source &self() const { return static_cast<const Source &>(*this); }
};

/// Element ((b * N + t) * heads + h) * D + d of tensor id is
/// ringattn::Details::counter_uniform(seed, id, that index).
class GeneratedData final : public FilledBy<GeneratedData> {
public:
  explicit GeneratedData(const RunConfig &cfg) : FilledBy(cfg), seed_(cfg.input.seed) {}

  /// Generated in double, rounded to Scalar (16-bit types: through float).
  template <class Scalar>
  void fill(TensorId id, const Partition &partition, int p, Scalar *dst) const {
    const std::int64_t row = std::int64_t(heads(id)) * head_dim_;
    const std::int64_t n = partition.local_size(p), N = seq_len_;
    const std::uint64_t seed = seed_, stream = std::uint64_t(id);
    Kokkos::parallel_for("ringattn::generate_member",
                         Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, batch_ * n),
                         [=](const std::int64_t br) {
                           const std::int64_t b = br / n, local = br % n;
                           const std::int64_t t = partition.global_position(p, local);
                           const std::int64_t src = (b * N + t) * row, out = br * row;
                           for (std::int64_t e = 0; e < row; ++e)
                             dst[out + e] = Scalar(ringattn::Details::counter_uniform(
                                 seed, stream, std::uint64_t(src + e)));
                         });
  }

private:
  void read_source_rows(TensorId id, std::int64_t b, std::int64_t t0, std::int64_t count,
                        double *dst) const override {
    const std::int64_t row = std::int64_t(heads(id)) * head_dim_;
    const std::uint64_t seed = seed_, stream = std::uint64_t(id);
    const std::int64_t base = (b * seq_len_ + t0) * row;
    Kokkos::parallel_for("ringattn::generate_rows",
                         Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, count * row),
                         [=](const std::int64_t e) {
                           dst[e] = ringattn::Details::counter_uniform(seed, stream,
                                                                       std::uint64_t(base + e));
                         });
  }

  std::uint64_t seed_;
};

/// The deck's .npy files, read a member's ranges at a time.
class NpyData final : public FilledBy<NpyData> {
public:
  explicit NpyData(const RunConfig &cfg)
      : FilledBy(cfg), readers_{NpyReader(cfg.input.q), NpyReader(cfg.input.k),
                                NpyReader(cfg.input.v)} {
    readers_[0].expect_shape(cfg.q_shape(), "Q [B, N, H, D]");
    readers_[1].expect_shape(cfg.kv_shape(), "K [B, N, Hkv, D]");
    readers_[2].expect_shape(cfg.kv_shape(), "V [B, N, Hkv, D]");
    if (!cfg.input.dout.empty()) {
      dout_.emplace(cfg.input.dout);
      dout_->expect_shape(cfg.q_shape(), "dO [B, N, H, D]");
    }
  }

  /// Read from the file, converted (rounded into a 16-bit Scalar).
  template <class Scalar>
  void fill(TensorId id, const Partition &partition, int p, Scalar *dst) const {
    const std::int64_t row = std::int64_t(heads(id)) * head_dim_;
    const std::int64_t n = partition.local_size(p);
    for (std::int64_t b = 0; b < batch_; ++b)
      for (int r = 0; r < partition.num_ranges(); ++r) {
        const Range range = partition.range(p, r);
        const std::int64_t local = partition.range_local_begin(p, r);
        reader(id).read((b * seq_len_ + range.begin) * row, range.size() * row,
                        dst + (b * n + local) * row);
      }
  }

private:
  void read_source_rows(TensorId id, std::int64_t b, std::int64_t t0, std::int64_t count,
                        double *dst) const override {
    const std::int64_t row = std::int64_t(heads(id)) * head_dim_;
    reader(id).read((b * seq_len_ + t0) * row, count * row, dst);
  }
  const NpyReader &reader(TensorId id) const {
    if (id != TensorId::dout) return readers_[int(id)];
    if (!dout_) throw std::runtime_error("input.do: no dO file (attention.backward needs one)");
    return *dout_;
  }
  std::array<NpyReader, 3> readers_;
  std::optional<NpyReader> dout_;
};

} // namespace

std::unique_ptr<InputData> InputData::create(const RunConfig &cfg) {
  if (cfg.input.source == InputSource::npy) return std::make_unique<NpyData>(cfg);
  return std::make_unique<GeneratedData>(cfg);
}

} // namespace ringattn::driver
