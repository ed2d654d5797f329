#include "AtomicFile.hpp"

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace ringattn::driver {

using Details::errno_text;
using Details::pwrite_all;

namespace {

// Temporary files still pending, for removal when the program is interrupted
// (SIGINT, SIGTERM, SIGHUP): fixed storage, so the handler only reads memory
// and calls unlink, which is async-signal-safe.
constexpr int max_pending = 64;
constexpr std::size_t max_pending_path = 4096;
char pending_path[max_pending][max_pending_path];
volatile std::sig_atomic_t pending_used[max_pending];

extern "C" void remove_pending_and_reraise(int sig) {
  for (int i = 0; i < max_pending; ++i)
    if (pending_used[i]) ::unlink(pending_path[i]);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int register_pending(const std::string &path) {
  static const bool installed = [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_pending_and_reraise);
    return true;
  }();
  (void)installed;
  if (path.size() >= max_pending_path) return -1;
  for (int i = 0; i < max_pending; ++i)
    if (!pending_used[i]) {
      std::memcpy(pending_path[i], path.c_str(), path.size() + 1);
      pending_used[i] = 1;
      return i;
    }
  return -1;
}

void unregister_pending(int &slot) {
  if (slot >= 0) pending_used[slot] = 0;
  slot = -1;
}

} // namespace

AtomicFile::AtomicFile(std::string path) : AtomicFile(std::move(path), long(::getpid())) {}

AtomicFile::AtomicFile(std::string path, long token)
    : path_(std::move(path)), temp_(temp_path_for(path_, token)) {
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec && !std::filesystem::is_directory(parent))
      throw NpyError(path_ + ": cannot create the folder " + parent.string() + ": " + ec.message());
  }
  slot_ = register_pending(temp_);
}

AtomicFile::~AtomicFile() {
  if (!done_) discard();
}

std::string AtomicFile::temp_path_for(const std::string &path, long token) {
  return path + ".tmp." + std::to_string(token);
}

void AtomicFile::commit() {
  if (done_) return;
  if (std::rename(temp_.c_str(), path_.c_str()) != 0) {
    const std::string why = errno_text();
    discard();
    throw NpyError(path_ + ": cannot move " + temp_ + " into place: " + why);
  }
  done_ = true;
  unregister_pending(slot_);
}

void AtomicFile::discard() noexcept {
  ::unlink(temp_.c_str());
  done_ = true;
  unregister_pending(slot_);
}

void check_writable(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw NpyError(path + ": cannot write it: it is a folder");
  AtomicFile file(path, long(::getpid()) + 1000000000L); // a name no run uses
  const int fd = ::open(file.temp_path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw NpyError(path + ": cannot create a file there: " + errno_text());
  ::close(fd);
} // ~AtomicFile removes the probe

void write_file_atomically(const std::string &path, const std::string &contents) {
  AtomicFile file(path);
  const int fd = ::open(file.temp_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw NpyError(file.temp_path() + ": cannot create: " + errno_text());
  const bool ok = pwrite_all(fd, contents.data(), contents.size(), 0);
  const std::string why = ok ? "" : errno_text();
  if (::close(fd) != 0 && ok) throw NpyError(file.temp_path() + ": close failed: " + errno_text());
  if (!ok) throw NpyError(file.temp_path() + ": write failed: " + why);
  file.commit();
}

} // namespace ringattn::driver
