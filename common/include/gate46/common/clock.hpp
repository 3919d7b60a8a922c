// The clock seam. Leases, expiry and "last used" are wall-clock times, because they are stored
// and must mean the same after a restart; everything that only measures intervals inside one
// process uses std::chrono::steady_clock directly. Code that decides by time takes a clock&
// so tests can drive time by hand.
#pragma once

#include <chrono>

namespace gate46 {

class clock {
 public:
  using time_point = std::chrono::system_clock::time_point;

  clock() = default;
  clock(const clock&) = delete;
  clock& operator=(const clock&) = delete;
  virtual ~clock() = default;

  // Thread-safe.
  [[nodiscard]] virtual time_point now() const noexcept = 0;
};

// The system's real-time clock.
const clock& system_wall_clock() noexcept;

}  // namespace gate46
