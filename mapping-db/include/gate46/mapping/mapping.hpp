// One mapping of RFC 3089's table: a name and the fake addresses that stand for it, with its
// lease. Values only; the store owns the table.
#pragma once

#include <chrono>
#include <optional>

#include "gate46/common/address.hpp"
#include "gate46/common/dns_name.hpp"

namespace gate46::mapping {

using time_point = std::chrono::system_clock::time_point;

struct mapping {
  dns_name name;
  std::optional<ip_address> v4;  // in pools.ipv4
  std::optional<ip_address> v6;  // in pools.ipv6
  time_point created;
  // The last DNS answer or new flow that used it: recycling takes the least recently used.
  time_point last_used;
  // Answer TTL + pools.lease_grace after the last use. Past it the mapping is only *eligible*
  // for recycling: it keeps working until the pool needs its address.
  time_point expiry;
  // A flow holds the mapping until then (renewed every pools.hold_refresh; a crashed
  // process's holds lapse by themselves).
  time_point held_until;
  // Never expires, never recycled (gate46ctl map add --pin).
  bool pinned = false;

  [[nodiscard]] bool eligible_for_recycling(time_point now) const noexcept {
    return !pinned && expiry <= now && held_until <= now;
  }
  [[nodiscard]] const std::optional<ip_address>& address(ip_family family) const noexcept {
    return family == ip_family::v4 ? v4 : v6;
  }
  friend bool operator==(const mapping&, const mapping&) = default;
};

}  // namespace gate46::mapping
