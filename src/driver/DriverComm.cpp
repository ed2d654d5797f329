#include "DriverComm.hpp"

#include <climits>
#include <cstdlib>
#include <iostream>

namespace ringattn::driver {

namespace {
// Rank and size variables of the common launchers: Open MPI (mpirun, and
// srun with Open MPI's PMIx), PMIx, PMI-1/2 (MPICH and Intel MPI hydra, srun
// --mpi=pmi2), MVAPICH2; and Slurm's srun with several tasks (below).
constexpr const char *launcher_size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE",
                                              "MV2_COMM_WORLD_SIZE"};
constexpr const char *launcher_rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                              "MV2_COMM_WORLD_RANK"};

/// Slurm's task count of this job step (srun), 0 outside one.
int slurm_step_tasks() {
  const char *s = std::getenv("SLURM_STEP_NUM_TASKS");
  return s ? std::atoi(s) : 0;
}
} // namespace

bool launched_by_mpi_launcher() {
  for (const char *v : launcher_size_vars)
    if (std::getenv(v)) return true;
  for (const char *v : launcher_rank_vars)
    if (std::getenv(v)) return true;
  return slurm_step_tasks() > 1; // srun of several tasks, whatever its --mpi plugin
}

int launcher_world_size() {
  for (const char *v : launcher_size_vars)
    if (const char *s = std::getenv(v)) {
      const int n = std::atoi(s);
      if (n > 0) return n;
    }
  return slurm_step_tasks() > 1 ? slurm_step_tasks() : 1;
}

bool mpi_active() {
#ifdef RINGATTN_ENABLE_MPI
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
#else
  return false;
#endif
}

#ifdef RINGATTN_ENABLE_MPI

DriverComm::DriverComm() {
  if (!mpi_active()) return; // one process, no MPI: the trivial collectives below
  comm_ = MPI_COMM_WORLD;
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}
void DriverComm::barrier() const {
  if (comm_ != MPI_COMM_NULL) MPI_Barrier(comm_);
}
double DriverComm::max(double x) const {
  if (comm_ == MPI_COMM_NULL) return x;
  double y = x;
  MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, comm_);
  return y;
}
std::int64_t DriverComm::max(std::int64_t x) const {
  if (comm_ == MPI_COMM_NULL) return x;
  std::int64_t y = x;
  MPI_Allreduce(&x, &y, 1, MPI_INT64_T, MPI_MAX, comm_);
  return y;
}
std::int64_t DriverComm::sum(std::int64_t x) const {
  if (comm_ == MPI_COMM_NULL) return x;
  std::int64_t y = x;
  MPI_Allreduce(&x, &y, 1, MPI_INT64_T, MPI_SUM, comm_);
  return y;
}
long DriverComm::broadcast(long x) const {
  if (comm_ == MPI_COMM_NULL) return x;
  MPI_Bcast(&x, 1, MPI_LONG, 0, comm_);
  return x;
}
std::vector<std::int64_t> DriverComm::gather(std::int64_t x) const {
  if (comm_ == MPI_COMM_NULL) return {x};
  std::vector<std::int64_t> all(size_);
  MPI_Allgather(&x, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm_);
  return all;
}
std::vector<double> DriverComm::gather(double x) const {
  if (comm_ == MPI_COMM_NULL) return {x};
  std::vector<double> all(size_);
  MPI_Allgather(&x, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, comm_);
  return all;
}
int DriverComm::agree(int code, const std::string &message) const {
  if (comm_ == MPI_COMM_NULL) {
    if (code != 0) std::cerr << message << "\n";
    return code;
  }
  int local[2] = {code, code != 0 ? -rank_ : -INT_MAX}, agreed[2] = {0, 0};
  MPI_Allreduce(local, agreed, 2, MPI_INT, MPI_MAX, comm_);
  if (agreed[0] != 0 && -agreed[1] == rank_) std::cerr << message << "\n";
  return agreed[0];
}

#else

DriverComm::DriverComm() = default;
void DriverComm::barrier() const {}
double DriverComm::max(double x) const { return x; }
std::int64_t DriverComm::max(std::int64_t x) const { return x; }
std::int64_t DriverComm::sum(std::int64_t x) const { return x; }
long DriverComm::broadcast(long x) const { return x; }
std::vector<std::int64_t> DriverComm::gather(std::int64_t x) const { return {x}; }
std::vector<double> DriverComm::gather(double x) const { return {x}; }
int DriverComm::agree(int code, const std::string &message) const {
  if (code != 0) std::cerr << message << "\n";
  return code;
}

#endif

} // namespace ringattn::driver
