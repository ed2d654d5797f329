#ifndef RINGATTN_DRIVER_ATOMICFILE_HPP
#define RINGATTN_DRIVER_ATOMICFILE_HPP

// "No partial output files" (docs/SPEC.md section 4): write under a temporary
// name, rename into place on commit; the temporary file is removed on an
// error, an exception or an interrupt.

#include "NpyFile.hpp"

#include <string>

namespace ringattn::driver {

/// A file written under a temporary name (`path.tmp.<token>`, token = the
/// process id by default) and renamed into place by commit(). Destroyed
/// without commit() (an error, an exception), it removes the temporary file,
/// so a failed run leaves nothing half-written. The parent folder of `path`
/// is created if missing.
///
/// With several ranks writing one file: the owner (rank 0) makes the
/// AtomicFile with a token every rank knows (its pid, broadcast), creates the
/// file at temp_path(); the others write to temp_path_for(path, token); after
/// a barrier the owner commits.
class AtomicFile {
public:
  explicit AtomicFile(std::string path);
  AtomicFile(std::string path, long token);
  ~AtomicFile();
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;

  const std::string &path() const { return path_; }
  const std::string &temp_path() const { return temp_; }
  static std::string temp_path_for(const std::string &path, long token);

  /// Renames the temporary file onto path(). Throws NpyError on failure (and
  /// removes the temporary file).
  void commit();
  /// Removes the temporary file (if any); no error if it is absent.
  void discard() noexcept;

private:
  std::string path_;
  std::string temp_;
  bool done_ = false;
  int slot_ = -1; ///< registration for removal on SIGINT/SIGTERM/SIGHUP
};

/// Checks, before any work, that an AtomicFile at `path` could be committed:
/// its folder exists or can be made, `path` is not a folder, and a file can
/// be created beside it (made and removed again). Throws NpyError.
void check_writable(const std::string &path);

/// Writes `contents` to `path` through an AtomicFile. Throws NpyError.
void write_file_atomically(const std::string &path, const std::string &contents);

} // namespace ringattn::driver

#endif
