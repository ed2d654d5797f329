#ifndef RINGATTN_DRIVER_DRIVERCOMM_HPP
#define RINGATTN_DRIVER_DRIVERCOMM_HPP

// The few collectives the driver needs (agreeing on errors, reducing timings
// and gathering per-member numbers), over the program's communicator, or
// trivially in a build without MPI. The library itself takes the caller's
// communicator; only this program decides to use MPI_COMM_WORLD. When MPI is
// not initialized (a build without MPI, or a simulated deck run outside a
// launcher) it is a communicator of one and never calls MPI.

#include <RingAttn_Config.hpp>

#ifdef RINGATTN_ENABLE_MPI
#include <mpi.h>
#endif

#include <cstdint>
#include <string>
#include <vector>

namespace ringattn::driver {

/// Whether an MPI launcher started this process (Open MPI's mpirun, or a
/// PMI / PMIx launcher such as MPICH's hydra or srun --mpi=pmix), read from the
/// environment it sets. Callable before MPI_Init and in a build without MPI.
bool launched_by_mpi_launcher();
/// The process count the launcher announces (1 when not launched).
int launcher_world_size();
/// MPI_Init was called and MPI_Finalize was not (false in a build without MPI).
bool mpi_active();

class DriverComm {
public:
  DriverComm();
  int rank() const { return rank_; }
  int size() const { return size_; }
#ifdef RINGATTN_ENABLE_MPI
  MPI_Comm comm() const { return comm_; } ///< MPI_COMM_NULL when MPI is not active
#endif
  void barrier() const;
  double max(double x) const;
  std::int64_t max(std::int64_t x) const;
  std::int64_t sum(std::int64_t x) const;
  long broadcast(long x) const;                           ///< rank 0's value
  std::vector<std::int64_t> gather(std::int64_t x) const; ///< every rank's value, on every rank
  std::vector<double> gather(double x) const;

  /// Agreement on an error: each rank passes its own exit code (0 when fine)
  /// and message; returns the worst code, and the lowest failing rank prints
  /// its message to stderr.
  int agree(int code, const std::string &message) const;

private:
  int rank_ = 0;
  int size_ = 1;
#ifdef RINGATTN_ENABLE_MPI
  MPI_Comm comm_ = MPI_COMM_NULL;
#endif
};

} // namespace ringattn::driver

#endif
