#ifndef RINGATTN_MPIAGREEMENT_HPP
#define RINGATTN_MPIAGREEMENT_HPP

// Collective errors of the MPI ring (docs/reliability.md, "Errors inside an
// application"). Before any message moves, every rank checks its own
// arguments and the ranks agree: either all go on, or all throw the same
// std::invalid_argument. After messages move, an exception on one rank
// cannot be agreed on (its peers wait in receives it will never match), so
// the ring ends the job with a message naming the rank and the error.

#include <core/detail/RingAttn_Fingerprint.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace ringattn::Details {

/// Collective over `comm`: every rank passes its own error (empty when its
/// arguments are fine) and the fingerprint of what must agree. Returns on
/// every rank, or throws std::invalid_argument on every rank with the same
/// message: the lowest failing rank's error, else the disagreement.
inline void agree_on_arguments(MPI_Comm comm, const std::string &local_error,
                               std::uint64_t fingerprint, const std::string &where) {
  int P = 1, p = 0;
  MPI_Comm_size(comm, &P);
  MPI_Comm_rank(comm, &p);
  int first_failing = local_error.empty() ? P : p;
  MPI_Allreduce(MPI_IN_PLACE, &first_failing, 1, MPI_INT, MPI_MIN, comm);
  if (first_failing < P) {
    std::int64_t length = std::int64_t(local_error.size());
    MPI_Bcast(&length, 1, MPI_INT64_T, first_failing, comm);
    std::vector<char> text(std::size_t(length) + 1, '\0');
    if (p == first_failing) std::memcpy(text.data(), local_error.data(), std::size_t(length));
    MPI_Bcast(text.data(), int(length), MPI_CHAR, first_failing, comm);
    throw std::invalid_argument(where + ": rank " + std::to_string(first_failing) + " of " +
                                std::to_string(P) + ": " + text.data());
  }
  std::uint64_t range[2] = {fingerprint, ~fingerprint}; // min, and max as min of the complement
  MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_UINT64_T, MPI_MIN, comm);
  if (range[0] != ~range[1])
    throw std::invalid_argument(where + ": the " + std::to_string(P) +
                                " ranks disagree on the pattern, the options (partition, "
                                "scale), the batch, head_dim or the storage type; every rank "
                                "of a ring must pass the same");
}

/// Runs `body` (a ring pass that posts messages); an exception escaping it
/// ends the job: the peers of this rank would otherwise wait forever in
/// receives it never matches, and unwinding past live receive buffers is
/// undefined. The message names the rank and the error.
template <class Body>
decltype(auto) abort_on_exception(MPI_Comm comm, const char *where, Body &&body) {
  auto fail = [&](const char *what) {
    int p = 0;
    MPI_Comm_rank(comm, &p);
    std::fprintf(stderr,
                 "%s: rank %d: %s; messages of the ring were in flight, so the other ranks "
                 "cannot finish this pass: ending the job (MPI_Abort)\n",
                 where, p, what);
    std::fflush(stderr);
    MPI_Abort(comm, 1);
    std::terminate(); // MPI_Abort does not return
  };
  try {
    return body();
  } catch (const std::exception &e) {
    fail(e.what());
  } catch (...) {
    fail("an exception of unknown type");
  }
  std::terminate(); // not reached
}

} // namespace ringattn::Details

#endif
