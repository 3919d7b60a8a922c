#include "gate46/common/clock.hpp"

namespace gate46 {
namespace {

class system_clock_source final : public clock {
 public:
  [[nodiscard]] time_point now() const noexcept override { return std::chrono::system_clock::now(); }
};

}  // namespace

const clock& system_wall_clock() noexcept {
  static const system_clock_source instance;
  return instance;
}

}  // namespace gate46
