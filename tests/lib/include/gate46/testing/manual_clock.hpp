// A wall clock that moves only when a test says so. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>

#include "gate46/common/clock.hpp"

namespace gate46::testing {

class manual_clock final : public clock {
 public:
  explicit manual_clock(time_point start = time_point{std::chrono::hours{24 * 365 * 56}}) : now_{start} {}

  [[nodiscard]] time_point now() const noexcept override { return now_.load(); }
  void set(time_point t) noexcept { now_.store(t); }
  void advance(std::chrono::system_clock::duration d) noexcept { now_.store(now_.load() + d); }

 private:
  std::atomic<time_point> now_;
};

}  // namespace gate46::testing
