#include "OutputFiles.hpp"

#include "Commands.hpp"

#include <exception>
#include <string>

#include <unistd.h>

namespace ringattn::driver {

int OutputFiles::open() {
  int rc = exit_ok;
  std::string message;
  const long token = comm_.broadcast(long(::getpid()));
  const DType dtype = output_file_dtype(cfg_.problem.dtype);
  try {
    if (comm_.rank() == 0) {
      if (!cfg_.output.o.empty()) o_file_.emplace(cfg_.output.o, token);
      if (!cfg_.output.lse.empty()) lse_file_.emplace(cfg_.output.lse, token);
      if (o_file_) o_ = NpyWriter::create(o_file_->temp_path(), dtype, cfg_.o_shape());
      if (lse_file_) lse_ = NpyWriter::create(lse_file_->temp_path(), dtype, cfg_.lse_shape());
    }
  } catch (const std::exception &e) {
    rc = exit_bad_input;
    message = std::string("ringattn: error: ") + e.what();
  }
  if ((rc = comm_.agree(rc, message)) != exit_ok) return rc;
  try {
    if (comm_.rank() != 0) {
      if (!cfg_.output.o.empty())
        o_ =
            NpyWriter::open(AtomicFile::temp_path_for(cfg_.output.o, token), dtype, cfg_.o_shape());
      if (!cfg_.output.lse.empty())
        lse_ = NpyWriter::open(AtomicFile::temp_path_for(cfg_.output.lse, token), dtype,
                               cfg_.lse_shape());
    }
  } catch (const std::exception &e) {
    rc = exit_failure;
    message = std::string("ringattn: error: ") + e.what();
  }
  return comm_.agree(rc, message);
}

void OutputFiles::commit() {
  if (o_) o_->close();
  if (lse_) lse_->close();
  comm_.barrier();
  if (o_file_) o_file_->commit();
  if (lse_file_) lse_file_->commit();
}

} // namespace ringattn::driver
