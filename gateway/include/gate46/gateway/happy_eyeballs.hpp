// Happy Eyeballs v2 (RFC 8305) as pure pieces for the connector: the order in which a name's
// addresses are tried, and when each attempt starts.
#pragma once

#include <chrono>
#include <vector>

#include "gate46/common/address.hpp"

namespace gate46::gateway {

// RFC 8305 §4: the addresses interleaved by family, starting with the preferred family
// (gateway.prefer_family) and alternating one by one while both last, each family keeping its
// resolver order; duplicates dropped. When the preferred family has no address, the other's
// come first.
std::vector<ip_address> interleave_families(const std::vector<ip_address>& v6, const std::vector<ip_address>& v4,
                                            ip_family preferred);

// RFC 8305 §5: attempt i starts i x delay after the first, unless an earlier one has failed,
// which starts the next at once. Given when each attempt so far ended in failure (or nullopt
// while it runs), the time the next attempt may start.
std::chrono::steady_clock::time_point next_attempt_at(std::chrono::steady_clock::time_point last_start,
                                                      bool last_failed, std::chrono::milliseconds delay,
                                                      std::chrono::steady_clock::time_point now);

}  // namespace gate46::gateway
