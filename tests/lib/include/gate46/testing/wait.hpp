// Bounded waiting: every wait in a test has a deadline, and correctness never rests on a sleep.
#pragma once

#include <chrono>
#include <functional>

namespace gate46::testing {

using namespace std::chrono_literals;

// Calls `predicate` until it returns true or `timeout` has passed, sleeping `poll_interval`
// between calls. It is called at least once, and once more at the deadline. Returns its last
// result.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll_interval = 10ms);

}  // namespace gate46::testing
