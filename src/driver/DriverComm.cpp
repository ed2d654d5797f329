#include "DriverComm.hpp"

#include <climits>
#include <iostream>

namespace ringattn::driver {

#ifdef RINGATTN_ENABLE_MPI

DriverComm::DriverComm() : comm_(MPI_COMM_WORLD) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}
void DriverComm::barrier() const { MPI_Barrier(comm_); }
double DriverComm::max(double x) const {
  double y = x;
  MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, comm_);
  return y;
}
std::int64_t DriverComm::max(std::int64_t x) const {
  std::int64_t y = x;
  MPI_Allreduce(&x, &y, 1, MPI_INT64_T, MPI_MAX, comm_);
  return y;
}
std::int64_t DriverComm::sum(std::int64_t x) const {
  std::int64_t y = x;
  MPI_Allreduce(&x, &y, 1, MPI_INT64_T, MPI_SUM, comm_);
  return y;
}
long DriverComm::broadcast(long x) const {
  MPI_Bcast(&x, 1, MPI_LONG, 0, comm_);
  return x;
}
std::vector<std::int64_t> DriverComm::gather(std::int64_t x) const {
  std::vector<std::int64_t> all(size_);
  MPI_Allgather(&x, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm_);
  return all;
}
std::vector<double> DriverComm::gather(double x) const {
  std::vector<double> all(size_);
  MPI_Allgather(&x, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, comm_);
  return all;
}
int DriverComm::agree(int code, const std::string &message) const {
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
