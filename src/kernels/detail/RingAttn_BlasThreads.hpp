#ifndef RINGATTN_BLASTHREADS_HPP
#define RINGATTN_BLASTHREADS_HPP

// The host path's BLAS thread-count switch (docs/DESIGN.md layer 2). The
// tile GEMMs run inside a Kokkos host parallel region, one per thread, so a
// threaded BLAS must run on one thread there. Its thread count is a process
// setting; callers may run `forward` from several host threads at once, so
// the switch is shared: the first caller in saves the setting and sets one
// thread, the last one out restores it. (A save/restore per caller would let
// the first caller out restore many threads under a caller still running,
// and the last one out would leave the process at one thread.)

#include <RingAttn_Config.hpp>
#include <kernels/detail/RingAttn_Cblas.hpp>

#include <mutex>

namespace ringattn::Details {

/// A process setting held at `value` while any instance of
/// SharedScopedSetting<Setting> lives, and restored when the last one ends.
/// Setting provides static `int get()` and `void set(int)`.
template <class Setting>
class SharedScopedSetting {
public:
  explicit SharedScopedSetting(int value) {
    const std::lock_guard<std::mutex> lock(state().mutex);
    if (state().holders++ == 0) {
      state().saved = Setting::get();
      Setting::set(value);
    }
  }
  ~SharedScopedSetting() {
    const std::lock_guard<std::mutex> lock(state().mutex);
    if (--state().holders == 0) Setting::set(state().saved);
  }
  SharedScopedSetting(const SharedScopedSetting &) = delete;
  SharedScopedSetting &operator=(const SharedScopedSetting &) = delete;

private:
  struct State {
    std::mutex mutex;
    int holders = 0;
    int saved = 0;
  };
  static State &state() {
    static State s;
    return s;
  }
};

#if defined(RINGATTN_ENABLE_BLAS) && defined(RINGATTN_HAVE_OPENBLAS_THREADS)
struct OpenBlasThreads {
  static int get() { return openblas_get_num_threads(); }
  static void set(int n) { openblas_set_num_threads(n); }
};

/// Keeps OpenBLAS on one thread while any host launch runs, restoring the
/// caller's setting after the last (MKL is linked sequential: nothing to do).
class SingleThreadedBlas {
public:
  SingleThreadedBlas() : one_thread_(1) {}

private:
  SharedScopedSetting<OpenBlasThreads> one_thread_;
};
#else
class SingleThreadedBlas {
public:
  SingleThreadedBlas() = default;
  SingleThreadedBlas(const SingleThreadedBlas &) = delete;
  SingleThreadedBlas &operator=(const SingleThreadedBlas &) = delete;
};
#endif

} // namespace ringattn::Details

#endif
