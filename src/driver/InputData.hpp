#ifndef RINGATTN_DRIVER_INPUTDATA_HPP
#define RINGATTN_DRIVER_INPUTDATA_HPP

// Where Q, K and V come from (docs/SPEC.md section 5 `input`): generated counter-based values
// or .npy files read in slices. Either way a member reads only its own rows,
// so memory grows as N/P, and verification can fetch any rows it needs.

#include "Deck.hpp"
#include "Npy.hpp"

#include <pattern/RingAttn_Partition.hpp>

#include <cstdint>
#include <memory>

namespace ringattn::driver {

/// dout: the backward's dO [B, N, H, D] (docs/SPEC.md section 7).
enum class TensorId { q = 0, k = 1, v = 2, dout = 3 };

class InputData {
public:
  /// Generated data, or the deck's .npy files (opened and checked here).
  static std::unique_ptr<InputData> create(const RunConfig &cfg);
  virtual ~InputData() = default;

  std::int64_t batch() const { return batch_; }
  std::int64_t seq_len() const { return seq_len_; }
  std::int64_t head_dim() const { return head_dim_; }
  int heads(TensorId id) const {
    return id == TensorId::q || id == TensorId::dout ? heads_ : kv_heads_;
  }

  /// Member p's rows of tensor `id`, in local order, into dst [B, n_p, heads, D]
  /// (rounded to nearest even into a 16-bit type, from float).
  virtual void fill_member(TensorId id, const Partition &partition, int p, float *dst) const = 0;
  virtual void fill_member(TensorId id, const Partition &partition, int p, double *dst) const = 0;
  virtual void fill_member(TensorId id, const Partition &partition, int p,
                           bfloat16_t *dst) const = 0;
  virtual void fill_member(TensorId id, const Partition &partition, int p,
                           float16_t *dst) const = 0;
  /// Global rows [t0, t0 + count) of batch entry b, all heads: dst [count, heads, D]. With
  /// 16-bit storage (problem.dtype), the values the ring holds: rounded to that type.
  void read_rows(TensorId id, std::int64_t b, std::int64_t t0, std::int64_t count,
                 double *dst) const;

protected:
  explicit InputData(const RunConfig &cfg);
  /// read_rows as the source holds them (not rounded to the storage type).
  virtual void read_source_rows(TensorId id, std::int64_t b, std::int64_t t0, std::int64_t count,
                                double *dst) const = 0;
  std::int64_t batch_, seq_len_, head_dim_;
  int heads_, kv_heads_;
  DType dtype_;
};

} // namespace ringattn::driver

#endif
