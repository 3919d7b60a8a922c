// Logging: spdlog underneath, one sink (stderr, which systemd hands to the journal), text or
// JSON lines. Components log through named loggers so a line says where it came from.
// Thread-safety: every function here may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <string_view>

#include <spdlog/logger.h>

#include "gate46/common/config.hpp"

namespace gate46 {

// Applies level and format to every gate46 logger, existing and future. Called at start and
// on every reload.
void configure_logging(const log_config& config);

// The logger for a component or subsystem ("daemon", "dns", ...), created on first use.
std::shared_ptr<spdlog::logger> logger(std::string_view name);

// Lets a message through at most once per interval, across threads: for conditions a flood of
// packets or connections would otherwise repeat thousands of times a second.
class log_throttle {
 public:
  explicit log_throttle(std::chrono::steady_clock::duration interval = std::chrono::seconds{1}) noexcept
      : interval_{interval.count()} {}
  bool allow() noexcept {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_.load(std::memory_order_relaxed);
    return now - last >= interval_ && last_.compare_exchange_strong(last, now, std::memory_order_relaxed);
  }

 private:
  std::chrono::steady_clock::rep interval_;
  std::atomic<std::chrono::steady_clock::rep> last_{std::numeric_limits<std::chrono::steady_clock::rep>::min() / 2};
};

}  // namespace gate46
