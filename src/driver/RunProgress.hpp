#ifndef RINGATTN_DRIVER_RUNPROGRESS_HPP
#define RINGATTN_DRIVER_RUNPROGRESS_HPP

#include <RingAttn.hpp>

#include <chrono>
#include <cstdio>

namespace ringattn::driver {

/// Progress on long runs (SPEC 4): rank 0, stderr, at most once a second.
class Progress {
public:
  Progress(bool enabled, int repeats)
      : enabled_(enabled), repeats_(repeats), last_(std::chrono::steady_clock::now()) {}
  void begin_repeat(int repeat) {
    repeat_ = repeat;
    start_ = std::chrono::steady_clock::now();
  }
  void update(const RingProgress &p) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    // fraction of this repeat done: members before this one, plus its steps
    const double done = (double(p.member) + double(p.step) / p.steps) / double(p.members);
    const bool simulated = p.members > 1 && members_are_virtual_;
    std::fprintf(stderr, "[ringattn] repeat %d/%d  %s %d/%d  step %d/%d  %.1f s, ~%.1f s left\n",
                 repeat_ + 1, repeats_, simulated ? "member" : "rank", p.member + 1, p.members,
                 p.step, p.steps, elapsed,
                 done > 0 && simulated ? elapsed * (1 - done) / done
                                       : elapsed * double(p.steps - p.step) / p.step);
  }
  void set_virtual_members(bool v) { members_are_virtual_ = v; }

private:
  bool enabled_;
  int repeats_;
  int repeat_ = 0;
  bool members_are_virtual_ = true;
  std::chrono::steady_clock::time_point last_, start_;
};

} // namespace ringattn::driver

#endif
