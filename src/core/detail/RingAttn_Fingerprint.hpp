#ifndef RINGATTN_FINGERPRINT_HPP
#define RINGATTN_FINGERPRINT_HPP

// A hash of the values that must agree: between the ranks of one MPI ring
// (RingAttn_MpiAgreement.hpp), and between a plan and the RingAttention
// that runs it (RingAttn_RingPlan.hpp).

#include <cstdint>
#include <cstring>

namespace ringattn::Details {

/// FNV-1a over the bytes of the values added.
class Fingerprint {
public:
  template <class T>
  Fingerprint &add(const T &value) {
    unsigned char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    for (unsigned char c : bytes) hash_ = (hash_ ^ c) * 1099511628211ull;
    return *this;
  }
  std::uint64_t value() const { return hash_; }

private:
  std::uint64_t hash_ = 1469598103934665603ull;
};

} // namespace ringattn::Details

#endif
